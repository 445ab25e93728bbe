-- Ends the external tasks whose lease lapsed (no progress report in time): failure
-- `Timedout`, or cancelled when a cancel was requested. Any worker runs this with the
-- reaper; no driver has to call.
-- ARGV: prefix, limit (at most MAX_BATCH per call), retention ms
-- Returns {failed ids, cancelled ids, stale}: stale counts entries whose task had ended
-- (or vanished), merely removed.
local limit, retention = math.min(arg_number(2), MAX_BATCH), arg_number(3)
local K_EXT = ext_key()
check_type(K_EXT, 'zset')
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', K_EXT, '-inf', now, 'LIMIT', 0, limit)
if #ids == 0 then return {{}, {}, 0} end
writable(K_LEASES, K_DONE, K_DEAD, K_COUNTS, K_ACTIVE)

-- Phase 1: read every record.
local lapsed, gone, rescored, owners, stale = {}, {}, {}, {}, 0
for _, id in ipairs(ids) do
  local v = read_job(job_key(id), 'st', 'owner', 'ext', 'creq', 'w', 'ld')
  local st, owner, lease, creq, watched, deadline = unpack(v or {})
  if st and lease and not is_final(st) then
    local deadline_ms = tonumber(deadline) or 0
    if deadline_ms <= now then
      lapsed[#lapsed + 1] = {id = id, owner = owner, lease = lease, creq = creq, watched = watched}
      if owner then owners[owner] = true end
      gone[#gone + 1] = id
    else
      -- The record's deadline is the truth (both are written together; this repairs).
      push(rescored, int(deadline_ms), id)
    end
  else
    gone[#gone + 1] = id
    stale = stale + 1
  end
end
countable(owners)

-- Phase 2: writes.
local failed, cancelled = {}, {}
for _, job in ipairs(lapsed) do
  local ended = end_lapsed(job_key(job.id), job.id, now, retention, job.watched, job.creq, job.owner, job.lease)
  if ended == 'cancelled' then cancelled[#cancelled + 1] = job.id else failed[#failed + 1] = job.id end
end
call_chunked('ZREM', K_EXT, nil, gone)
call_chunked('ZADD', K_EXT, nil, rescored)
flush()
return {failed, cancelled, stale}
