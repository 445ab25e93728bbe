-- Enqueue jobs (one, or a batch of one queue).
-- ARGV: prefix, then per job: id, run_at_ms (0 = none), delay_ms, idempotency key ('' = none),
--       n, then n field/value arguments of the record's static fields.
-- Returns per job {1, id, created ms, due ms} when enqueued, {0, existing_id, 0, 0} when its
-- idempotency key was seen (within the batch too), or {-1, id, 0, 0} when the id exists
-- already (a resend after a lost reply).
local now = now_ms()
local out = {}
local i = 2
while i <= #ARGV do
  local id, run_at, delay, idem, n = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), ARGV[i + 3], tonumber(ARGV[i + 4])
  local first, last = i + 5, i + 4 + n
  i = last + 1
  local idem_key = PREFIX .. 'idem:' .. idem
  local existing = idem ~= '' and redis.call('GET', idem_key)
  local key = job_key(id)
  if existing then
    out[#out + 1] = {0, existing, 0, 0}
  elseif redis.call('EXISTS', key) == 1 then
    out[#out + 1] = {-1, id, 0, 0}
  else
    local due = math.max(run_at, now + delay)
    local where, at
    if due > now then
      redis.call('ZADD', K_DELAYED, due, id)
      where, at = 'ra', due
    else
      where, at = 'sid', redis.call('XADD', K_STREAM, '*', 'j', id)
    end
    if idem ~= '' then
      redis.call('SET', idem_key, id)
      redis.call('HSET', key, 'st', 'pending', 'ct', now, 'ut', now, where, at, 'ik', idem, unpack(ARGV, first, last))
    else
      redis.call('HSET', key, 'st', 'pending', 'ct', now, 'ut', now, where, at, unpack(ARGV, first, last))
    end
    push(created, now, id)
    out[#out + 1] = {1, id, now, due}
  end
end
flush()
return out
