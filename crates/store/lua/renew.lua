-- Heartbeat: renew the leases of many jobs of one queue in one call.
-- ARGV: prefix, lease ttl ms, then id, epoch pairs.
-- Returns {deadline, status...} with status 1 = renewed, 2 = renewed and cancel requested,
-- 0 = lease lost (the worker must stop the job and write nothing).
local ttl = tonumber(ARGV[2])
local deadline = now_ms() + ttl
local out = {deadline}
for i = 3, #ARGV, 2 do
  local id, epoch = ARGV[i], ARGV[i + 1]
  local v = check_lease(job_key(id), epoch, 'creq')
  if v then
    redis.call('ZADD', K_LEASES, 'XX', deadline, id)
    out[#out + 1] = (v[3] == '1') and 2 or 1
  else
    out[#out + 1] = 0
  end
end
return out
