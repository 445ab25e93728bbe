-- Heartbeat: renew the leases of many jobs of one queue in one call.
-- ARGV: prefix, lease ttl ms, then id, token pairs (at most MAX_BATCH).
-- Returns {deadline, status...} with status 1 = renewed, 2 = renewed and cancel requested,
-- 0 = lease lost (the worker must stop the job and write nothing).
local ttl = arg_number(2)
bounded((#ARGV - 2) / 2)
writable(K_LEASES)
local deadline = now_ms() + ttl
local out, renewed = {deadline}, {}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local v = check_lease(job_key(id), token, 'creq')
  if v then
    push(renewed, int(deadline), id)
    out[#out + 1] = (v[4] == '1') and 2 or 1
  else
    out[#out + 1] = 0
  end
end
call_chunked('ZADD', K_LEASES, 'XX', renewed)
return out
