-- Take back jobs whose lease lapsed (any worker runs this; no leader).
-- ARGV: prefix, limit, retention ms
-- The epoch is bumped first: that is the fence that makes the old holder's writes fail.
-- Returns the ids taken back.
local limit, retention = tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  local key = job_key(id)
  local v = redis.call('HMGET', key, 'st', 'att', 'max', 'creq', 'wk', 'w')
  if v[1] ~= 'processing' then
    push(unleased, id) -- a stale lease entry
  else
    redis.call('HINCRBY', key, 'ep', 1)
    local msg = 'lease expired: worker ' .. (v[5] or '?') .. ' stopped renewing it'
    if v[4] == '1' then
      finalize(key, id, 'cancelled', now, retention, v[6], {'ec', 'RequestCanceled', 'msg', msg})
    elseif tonumber(v[2]) < tonumber(v[3]) then
      redis.call('HSET', key, 'ec', 'LeaseExpired', 'msg', msg)
      push(unleased, id)
      make_ready(key, id, now)
      notify(id, v[6])
    else
      finalize(key, id, 'failure', now, retention, v[6], {'ec', 'LeaseExpired', 'msg', msg})
    end
  end
end
flush()
return ids
