-- Start deadlines: fail the jobs not started by their `start_by` (any worker runs this
-- with promotion; no leader). They end `failure` with error code Expired and the
-- attempts they had (0: they never ran), and leave wherever they wait (delayed, the
-- stream, a list, held).
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
  local st, sid, watched, owner, attempts, pri, grp, job_type =
    unpack(read_job(job_key(id), 'st', 'sid', 'w', 'owner', 'att', 'pri', 'grp', 'type') or {})
  -- Only jobs that never started expire (a claim removes its job from `deadlines`).
  if st == 'pending' and (tonumber(attempts) or 0) == 0 then
    routable(pri, grp)
    check_type(held_list(job_type or ''), 'list')
    if owner then owners[owner] = true end
    due[#due + 1] = {id = id, sid = sid, watched = watched, owner = owner, pri = pri, grp = grp,
      type = job_type}
  end
end
countable(owners)

-- Phase 2: writes.
local expired = {}
for _, job in ipairs(due) do
  expire_unstarted(job_key(job.id), job.id, now, retention, job.watched, job.owner)
  unready(job.id, job.sid, job.pri, job.grp, job.type)
  push(undelayed, job.id)
  expired[#expired + 1] = job.id
end
call_chunked('ZREM', K_DEADLINES, nil, ids)
flush()
return expired
