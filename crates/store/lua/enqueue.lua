-- Enqueue one job.
-- ARGV: prefix, id, run_at_ms (0 = none), delay_ms, idempotency key ('' = none),
--       then field/value pairs of the record's static fields.
-- Returns {1, id, created ms, due ms} when enqueued, {0, existing_id, 0, 0} when the
-- idempotency key was seen.
local id, run_at, delay, idem = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local idem_key = PREFIX .. 'idem:' .. idem
if idem ~= '' then
  local existing = redis.call('GET', idem_key)
  if existing then return {0, existing, 0, 0} end
end
local key = job_key(id)
if redis.call('EXISTS', key) == 1 then return redis.error_reply('IDEXISTS job id already exists') end
local now = now_ms()
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
  redis.call('HSET', key, 'st', 'pending', 'ct', now, 'ut', now, where, at, 'ik', idem, unpack(ARGV, 6))
else
  redis.call('HSET', key, 'st', 'pending', 'ct', now, 'ut', now, where, at, unpack(ARGV, 6))
end
redis.call('ZADD', K_JOBS, now, id)
return {1, id, now, due}
