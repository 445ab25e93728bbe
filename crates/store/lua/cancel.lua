-- CancelTask from a producer.
-- ARGV: prefix, id, owner ('' = any), retention ms, force ('1': ignore `cancelable`; admins only,
--       checked by the caller)
-- An external task is only flagged, pending or not: its driver sees the request in the
-- answer of its next progress report and ends it (tasks.lua).
-- A job with children is also added to `cascade` (scored by now): its canceller cancels
-- the subtree next and then removes it; a cascade still there a while later (the
-- canceller died half-way) is finished by a worker's maintenance.
-- Returns 'CANCELLED' (was pending), 'REQUESTED' (running: the worker stops it),
-- 'NOT_FOUND', 'NOT_SUPPORTED' or 'INVALID:<status>'.
local id, owner, retention, force = ARGV[2], ARGV[3], arg_number(4), ARGV[5]
local key = job_key(id)
writable(K_STREAM, K_DELAYED, K_LEASES, K_DONE, K_DEAD, K_COUNTS, K_ACTIVE, K_JOBS)
check_type(K_DEADLINES, 'zset')
local cascade = PREFIX .. 'cascade'
check_type(cascade, 'zset')
local has_kids = redis.call('EXISTS', PREFIX .. 'kids:' .. id) == 1
-- (A waiting job has no owner: a caller scoped to one cannot see it. Its record is
-- written once every type is checked: nothing after it can fail.)
if owner == '' then unwait(id) end
local st, job_owner, cancelable, sid, creq, watched, ext, created_at =
  unpack(redis.call('HMGET', key, 'st', 'owner', 'can', 'sid', 'creq', 'w', 'ext', 'ct'))
if not st or (owner ~= '' and job_owner ~= owner) then return 'NOT_FOUND' end
if is_final(st) then return 'INVALID:' .. st end
if cancelable == '0' and force ~= '1' then return 'NOT_SUPPORTED' end
if st == 'pending' and not ext then
  countable({[job_owner] = true})
  -- A job enqueued straight onto the stream enters `jobs` as it leaves it.
  local unindexed = not redis.call('ZSCORE', K_JOBS, id)
  -- Writes, a denyoom one (HSET) first.
  finalize(key, id, 'cancelled', now_ms(), retention, watched,
    cancelled_fields('cancelled before it ran'), job_owner)
  unready(sid)
  if unindexed then push(created, created_at or '0', id) end
  push(undelayed, id)
  redis.call('ZREM', K_DEADLINES, id)
  flush()
  if has_kids then redis.call('ZADD', cascade, 'NX', now_ms(), id) end
  return 'CANCELLED'
end
-- processing (or external): the lease holder (the driver) sees the request at its next
-- heartbeat or progress report.
-- Only a new request records a cascade: a repeated one (another walk passing by) would
-- put back what the first canceller's walk marked done.
if creq ~= '1' then
  redis.call('HSET', key, 'creq', 1, 'ut', now_ms())
  notify(id, watched)
  if has_kids then redis.call('ZADD', cascade, 'NX', now_ms(), id) end
end
return 'REQUESTED'
