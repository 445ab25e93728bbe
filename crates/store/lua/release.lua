-- Hand leases back without spending an attempt: at shutdown (ready at once), or a job
-- this worker has no handler for (ready after a delay, so another worker claims it; the
-- delay doubles with each such hand-back of the job, counted in `hb`, up to 2 s).
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
      local bounces = redis.call('HINCRBY', key, 'hb', 1)
      local due = now + math.min(delay * 2 ^ math.min(bounces - 1, 16), 2000)
      redis.call('HSET', key, 'st', 'pending', 'ra', due, 'ut', now)
      redis.call('ZADD', K_DELAYED, due, id)
    else
      make_ready(key, id, now)
    end
    notify(id, v[4])
    released = released + 1
  end
end
flush()
return released
