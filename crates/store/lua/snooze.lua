-- A handler snoozes its job (or a downstream asked it to slow down): the attempt ends
-- without being spent, the lease (and its concurrency slot) is freed, and the job is
-- due again after the delay (ready at once for a delay of 0).
-- ARGV: prefix, retention ms, delay ms, id, token
-- Returns 'OK', 'ALREADY:<status>' (this lease ended before: a resend after a lost
-- reply), 'LOST', or 'CANCELLED' (a cancel was requested: the job is recorded cancelled).
local retention, delay, id, token = arg_number(2), arg_number(3), ARGV[4], ARGV[5]
writable(K_STREAM, K_DELAYED, K_LEASES, K_DONE, K_DEAD, K_COUNTS, K_ACTIVE)
local key = job_key(id)
local refusal, creq, watched, attempts, owner, grp, pri =
  check_lease(key, token, 'creq', 'w', 'att', 'owner', 'grp', 'pri')
if refusal == 'ALREADY' then
  local st = unpack(read_job(key, 'st') or {})
  return 'ALREADY:' .. (st or '')
end
if refusal then return refusal end
countable({[owner or ''] = true})
routable(pri, grp)
local now = now_ms()

-- Writes.
leave_group(grp, id)
if creq == '1' then
  finalize(key, id, 'cancelled', now, retention, watched, cancelled_fields('cancelled on request'), owner)
  flush()
  return 'CANCELLED'
end
-- (An absent `att` is `ep`, layout 5: the token's.)
attempts = tonumber(attempts) or tonumber(string.match(token or '', '^%d+')) or 1
redis.call('HSET', key, 'att', int(math.max(attempts - 1, 0)))
redis.call('HDEL', key, 'eta')
push(unleased, id)
if delay > 0 then
  local due = int(now + delay)
  redis.call('HSET', key, 'st', 'pending', 'ra', due, 'ut', int(now))
  push(delayed, due, id)
else
  make_ready(key, id, now, pri, grp)
end
notify(id, watched)
flush()
return 'OK'
