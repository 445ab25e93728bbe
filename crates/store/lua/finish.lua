-- Lease holders record their attempts' outcomes (one job, or a batch of one queue).
-- ARGV: prefix, retention ms, then per job 8 arguments: id, epoch, kind, a1..a5, by kind:
--   'success':   a1 = result (msgpack)
--   'error':     a1 = retryable (0/1), a2 = retry delay ms, a3 = message, a4 = code, a5 = info (JSON array)
--   'cancelled': a1 = message
-- Returns per job 'OK', 'RETRY' (scheduled again), 'DEAD' (failed for good), 'ALREADY' (this
-- lease had recorded its outcome before: a resend after a lost reply), 'LOST', or
-- 'NOT_REQUESTED' (cancelled without a cancel request).
local retention = tonumber(ARGV[2])
local now = now_ms()

local function finish_one(id, epoch, kind, a1, a2, a3, a4, a5)
  local key = job_key(id)
  local v, refusal = check_lease(key, epoch, 'att', 'max', 'creq', 'w')
  if not v then return refusal end
  local watched = v[6]
  if kind == 'success' then
    finalize(key, id, 'success', now, retention, watched, {'res', a1})
    return 'OK'
  elseif kind == 'cancelled' then
    if v[5] ~= '1' then return 'NOT_REQUESTED' end
    finalize(key, id, 'cancelled', now, retention, watched, {'ec', 'RequestCanceled', 'msg', a1})
    return 'OK'
  end
  if v[5] == '1' then
    -- Cancel was requested while the attempt failed: the cancel wins.
    finalize(key, id, 'cancelled', now, retention, watched, {'ec', 'RequestCanceled', 'msg', 'cancelled on request'})
    return 'OK'
  end
  local delay = tonumber(a2)
  local err = {'msg', a3, 'ec', a4, 'ei', a5}
  if a1 == '1' and tonumber(v[3]) < tonumber(v[4]) then
    redis.call('HSET', key, unpack(err))
    redis.call('HDEL', key, 'eta')
    push(unleased, id)
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
end

local out = {}
for i = 3, #ARGV, 8 do
  out[#out + 1] = finish_one(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7])
end
flush()
return out
