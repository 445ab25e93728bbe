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
local ids = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now, 'LIMIT', 0, limit)

-- Phase 1: read every record.
local lapsed, stale = {}, 0
for _, id in ipairs(ids) do
  local v = read_job(job_key(id), 'st', 'att', 'max', 'creq', 'wk', 'w', 'ep', 'owner', 'pri', 'grp')
  if v and v[1] == 'processing' then
    routable(v[9], v[10])
    lapsed[#lapsed + 1] = {id, v}
  else
    push(unleased, id) -- a stale lease entry
    stale = stale + 1
  end
end

-- Phase 2: writes.
local requeued, failed, cancelled = {}, {}, {}
for _, job in ipairs(lapsed) do
  local id, v = job[1], job[2]
  local key = job_key(id)
  redis.call('HSET', key, 'ep', int((tonumber(v[7]) or 0) + 1), 'tk', '')
  leave_group(v[10], id)
  local msg = 'lease expired: worker ' .. (v[5] or '?') .. ' stopped renewing it'
  if v[4] == '1' then
    finalize(key, id, 'cancelled', now, retention, v[6], {'ec', 'RequestCanceled', 'msg', msg}, v[8])
    cancelled[#cancelled + 1] = id
  elseif (tonumber(v[2]) or 0) < (tonumber(v[3]) or 0) then
    redis.call('HSET', key, 'ec', 'LeaseExpired', 'msg', msg)
    push(unleased, id)
    make_ready(key, id, now, v[9], v[10])
    notify(id, v[6])
    requeued[#requeued + 1] = id
  else
    finalize(key, id, 'failure', now, retention, v[6], {'ec', 'LeaseExpired', 'msg', msg}, v[8])
    failed[#failed + 1] = id
  end
end
flush()
return {requeued, failed, cancelled, stale}
