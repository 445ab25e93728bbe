-- Graceful shutdown: hand leases back at once, without spending an attempt.
-- ARGV: prefix, retention ms, then id, epoch pairs. Returns how many were handed back.
-- A job whose cancel was requested is recorded cancelled instead.
local now = now_ms()
local retention = tonumber(ARGV[2])
local released = 0
for i = 3, #ARGV, 2 do
  local id, epoch = ARGV[i], ARGV[i + 1]
  local key = job_key(id)
  local v = check_lease(key, epoch, 'creq', 'w')
  if v and v[3] == '1' then
    finalize(key, id, 'cancelled', now, retention, v[4], {'ec', 'RequestCanceled', 'msg', 'cancelled on request'})
    released = released + 1
  elseif v then
    redis.call('HINCRBY', key, 'att', -1)
    redis.call('ZREM', K_LEASES, id)
    make_ready(key, id, now)
    notify(id, v[4])
    released = released + 1
  end
end
flush()
return released
