-- Hand leases back without spending an attempt: at shutdown (ready at once), or a job
-- this worker has no handler for (ready after a delay, so another worker claims it).
-- ARGV: prefix, retention ms, delay ms, then id, epoch pairs. Returns how many were handed back.
-- A job whose cancel was requested is recorded cancelled instead.
local now = now_ms()
local retention = tonumber(ARGV[2])
local delay = tonumber(ARGV[3])
local released = 0
for i = 4, #ARGV, 2 do
  local id, epoch = ARGV[i], ARGV[i + 1]
  local key = job_key(id)
  local v = check_lease(key, epoch, 'creq', 'w')
  if v and v[3] == '1' then
    finalize(key, id, 'cancelled', now, retention, v[4], {'ec', 'RequestCanceled', 'msg', 'cancelled on request'})
    released = released + 1
  elseif v then
    redis.call('HINCRBY', key, 'att', -1)
    redis.call('ZREM', K_LEASES, id)
    if delay > 0 then
      redis.call('HSET', key, 'st', 'pending', 'ra', now + delay, 'ut', now)
      redis.call('ZADD', K_DELAYED, now + delay, id)
    else
      make_ready(key, id, now)
    end
    notify(id, v[4])
    released = released + 1
  end
end
flush()
return released
