-- Start deadlines: fail the jobs not started by their `start_by` (any worker runs this
-- with promotion; no leader). They end `failure` with error code Expired and the
-- attempts they had (0: they never ran), and leave the stream or `delayed` (a list or
-- held entry stays behind, stale, for the claim that reaches it to skip).
-- ARGV: prefix, limit (at most MAX_BATCH per call), retention ms
-- Returns the ids that expired.
local limit, retention = math.min(arg_number(2), MAX_BATCH), arg_number(3)
writable(K_STREAM, K_DELAYED, K_LEASES, K_DONE, K_DEAD, K_COUNTS, K_ACTIVE)
check_type(K_DEADLINES, 'zset')
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', K_DEADLINES, '-inf', '(' .. now, 'LIMIT', 0, limit)

-- Phase 1: read every record.
local due, owners = {}, {}
for _, id in ipairs(ids) do
  local st, sid, watched, owner, attempts, epoch =
    unpack(read_job(job_key(id), 'st', 'sid', 'w', 'owner', 'att', 'ep') or {})
  -- Only jobs that never started expire (a claim removes its job from `deadlines`).
  -- (An absent `att` is `ep`, layout 5.)
  if st == 'pending' and (tonumber(attempts) or tonumber(epoch) or 0) == 0 then
    if owner then owners[owner] = true end
    due[#due + 1] = {id = id, sid = sid, watched = watched, owner = owner}
  end
end
countable(owners)

-- Phase 2: writes.
local expired = {}
for _, job in ipairs(due) do
  expire_unstarted(job_key(job.id), job.id, now, retention, job.watched, job.owner)
  unready(job.sid)
  push(undelayed, job.id)
  expired[#expired + 1] = job.id
end
call_chunked('ZREM', K_DEADLINES, nil, ids)
flush()
return expired
