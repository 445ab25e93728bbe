-- Retention: delete finished jobs past expires_at, with their index entries.
-- ARGV: prefix, limit. Returns how many were deleted.
local limit = tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', K_DONE, '-inf', now_ms(), 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  local key = job_key(id)
  local v = redis.call('HMGET', key, 'st', 'ik', 'owner')
  if v[2] then redis.call('DEL', idem_key(v[3], v[2])) end
  if v[3] then redis.call('ZREM', owner_index(v[3]), id) end
  if v[1] then redis.call('HINCRBY', K_COUNTS, v[1], -1) end
  redis.call('DEL', key)
  redis.call('ZREM', K_JOBS, id)
  redis.call('ZREM', K_DONE, id)
  redis.call('ZREM', K_DEAD, id)
end
return #ids
