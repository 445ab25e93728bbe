-- Take back jobs whose lease lapsed (any worker runs this; no leader).
-- ARGV: prefix, limit (at most MAX_BATCH are handled per call), retention ms
-- The epoch moves on and the token's nonce is cleared first: that is the fence that
-- makes the old holder's writes fail.
-- Returns {requeued ids, failed ids, cancelled ids, stale}: the jobs taken back by what
-- became of them, and how many lease entries were stale (their job was not processing)
-- and merely removed.
local limit, retention = math.min(arg_number(2), MAX_BATCH), arg_number(3)
writable(K_STREAM, K_LEASES, K_DONE, K_DEAD, K_COUNTS, K_ACTIVE)
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', K_LEASES, '(-inf', now, 'LIMIT', 0, limit) -- (not the pin)

-- Phase 1: read every record.
local lapsed, stale, owners = {}, 0, {}
for _, id in ipairs(ids) do
  local v = read_job(job_key(id), 'st', 'att', 'max', 'creq', 'wk', 'w', 'ep', 'owner', 'pri', 'grp')
  local st, attempts, max, creq, worker, watched, epoch, owner, pri, grp = unpack(v or {})
  if st == 'processing' then
    routable(pri, grp)
    lapsed[#lapsed + 1] = {id = id, attempts = attempts, max = max, creq = creq, worker = worker,
      watched = watched, epoch = epoch, owner = owner, pri = pri, grp = grp}
    if owner then owners[owner] = true end
  else
    push(unleased, id) -- a stale lease entry
    stale = stale + 1
  end
end
countable(owners)

-- Phase 2: writes.
local requeued, failed, cancelled = {}, {}, {}
for _, job in ipairs(lapsed) do
  local id = job.id
  local key = job_key(id)
  -- The epoch moves on, the attempts do not: an `att` left to equal `ep` (layout 5)
  -- is written now.
  local epoch = tonumber(job.epoch) or 0
  if job.attempts then
    redis.call('HSET', key, 'ep', int(epoch + 1), 'tk', '')
  else
    job.attempts = int(epoch)
    redis.call('HSET', key, 'ep', int(epoch + 1), 'tk', '', 'att', job.attempts)
  end
  leave_group(job.grp, id)
  local msg = 'lease expired: worker ' .. (job.worker or '?') .. ' stopped renewing it'
  if job.creq == '1' then
    finalize(key, id, 'cancelled', now, retention, job.watched, cancelled_fields(msg), job.owner)
    cancelled[#cancelled + 1] = id
  elseif (tonumber(job.attempts) or 0) < (tonumber(job.max) or DEFAULT_MAX_ATTEMPTS) then
    redis.call('HSET', key, 'ec', 'LeaseExpired', 'msg', msg)
    push(unleased, id)
    make_ready(key, id, now, job.pri, job.grp)
    notify(id, job.watched)
    requeued[#requeued + 1] = id
  else
    finalize(key, id, 'failure', now, retention, job.watched, {'ec', 'LeaseExpired', 'msg', msg}, job.owner)
    failed[#failed + 1] = id
  end
end
flush()
return {requeued, failed, cancelled, stale}
