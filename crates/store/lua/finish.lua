-- The lease holder records the attempt's outcome.
-- ARGV: prefix, id, epoch, retention ms, kind, then by kind:
--   'success':   result (msgpack)
--   'error':     retryable (0/1), retry delay ms, message, code, info (JSON array)
--   'cancelled': message
-- Returns 'OK', 'RETRY' (scheduled again), 'DEAD' (failed for good), 'ALREADY' (this lease
-- had recorded its outcome before: a resend after a lost reply) or 'LOST'.
local id, epoch, retention, kind = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local key = job_key(id)
local v, refusal = check_lease(key, epoch, 'att', 'max', 'creq', 'w')
local watched = v and v[6]
if not v then return refusal end
local now = now_ms()
if kind == 'success' then
  finalize(key, id, 'success', now, retention, watched, {'res', ARGV[6]})
  return 'OK'
elseif kind == 'cancelled' then
  if v[5] ~= '1' then return 'NOT_REQUESTED' end
  finalize(key, id, 'cancelled', now, retention, watched,
    {'ec', 'RequestCanceled', 'msg', ARGV[6]})
  return 'OK'
end
local retryable, delay = ARGV[6] == '1', tonumber(ARGV[7])
local err = {'msg', ARGV[8], 'ec', ARGV[9], 'ei', ARGV[10]}
if v[5] == '1' then
  -- Cancel was requested while the attempt failed: the cancel wins.
  finalize(key, id, 'cancelled', now, retention, watched, {'ec', 'RequestCanceled', 'msg', 'cancelled on request'})
  return 'OK'
end
if retryable and tonumber(v[3]) < tonumber(v[4]) then
  redis.call('HSET', key, unpack(err))
  redis.call('HDEL', key, 'eta')
  redis.call('ZREM', K_LEASES, id)
  if delay > 0 then
    redis.call('HSET', key, 'st', 'pending', 'ra', now + delay, 'ut', now)
    redis.call('ZADD', K_DELAYED, now + delay, id)
  else
    make_ready(key, id, now)
  end
  notify(id, watched)
  return 'RETRY'
end
finalize(key, id, 'failure', now, retention, watched, err)
return 'DEAD'
