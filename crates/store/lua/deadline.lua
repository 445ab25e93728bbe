-- Start deadlines: fail the jobs not started by their `start_by` (any worker runs this
-- in its maintenance pass; no leader). They end `failure` with error code Expired and
-- the attempts they had (0: they never ran), and leave wherever they wait (delayed, the
-- stream, a list, held).
-- ARGV: prefix, limit (at most MAX_BATCH per call), retention ms
-- Returns the ids that expired.
local limit, retention = math.min(arg_number(2), MAX_BATCH), arg_number(3)
writable(K_STREAM, K_DELAYED, K_LEASES, K_DONE, K_DEAD, K_COUNTS, K_ACTIVE)
check_type(K_DEADLINES, 'zset')
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', K_DEADLINES, '-inf', '(' .. now, 'LIMIT', 0, limit)

-- Phase 1: read every record.
local due = {}
for _, id in ipairs(ids) do
  local v = read_job(job_key(id), 'st', 'sid', 'w', 'owner', 'att', 'pri', 'grp', 'type')
  -- Only jobs that never started expire (a claim removes its job from `deadlines`).
  if v and v[1] == 'pending' and (tonumber(v[5]) or 0) == 0 then
    routable(v[6], v[7])
    check_type(held_list(v[8] or ''), 'list')
    due[#due + 1] = {id, v}
  end
end

-- Phase 2: writes.
local expired = {}
for _, job in ipairs(due) do
  local id, v = job[1], job[2]
  unready(id, v[2], v[6], v[7], v[8])
  redis.call('ZREM', K_DELAYED, id)
  expire_unstarted(job_key(id), id, now, retention, v[3], v[4])
  expired[#expired + 1] = id
end
call_chunked('ZREM', K_DEADLINES, nil, ids)
flush()
return expired
