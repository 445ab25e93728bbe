-- A handler snoozes its job (or a downstream asked it to slow down): the attempt ends
-- without being spent, the lease (and its concurrency slot) is freed, and the job is
-- due again after the delay (ready at once for a delay of 0).
-- ARGV: prefix, retention ms, delay ms, id, token
-- Returns 'OK', 'ALREADY:<status>' (a resend after a lost reply), 'LOST', or 'CANCELLED'
-- (a cancel was requested: the job is recorded cancelled instead).
local retention, delay, id, token = arg_number(2), arg_number(3), ARGV[4], ARGV[5]
writable(K_STREAM, K_DELAYED, K_LEASES, K_DONE, K_DEAD, K_COUNTS, K_ACTIVE)
local key = job_key(id)
local v, refusal = check_lease(key, token, 'creq', 'w', 'att', 'owner', 'grp', 'pri')
if refusal == 'ALREADY' then return 'ALREADY:' .. (read_job(key, 'st')[1] or '') end
if not v then return refusal end
routable(v[9], v[8])
local now = now_ms()

-- Writes.
leave_group(v[8], id)
if v[4] == '1' then
  finalize(key, id, 'cancelled', now, retention, v[5], {'ec', 'RequestCanceled', 'msg', 'cancelled on request'}, v[7])
  flush()
  return 'CANCELLED'
end
redis.call('HSET', key, 'att', int(math.max((tonumber(v[6]) or 1) - 1, 0)))
redis.call('HDEL', key, 'eta')
push(unleased, id)
if delay > 0 then
  local due = int(now + delay)
  redis.call('HSET', key, 'st', 'pending', 'ra', due, 'ut', int(now))
  redis.call('ZADD', K_DELAYED, due, id)
else
  make_ready(key, id, now, v[9], v[8])
end
notify(id, v[5])
flush()
return 'OK'
