-- Retention: delete finished jobs past expires_at, with their index entries.
-- ARGV: prefix, limit (at most MAX_BATCH are deleted per call). Returns how many were deleted.
local limit = math.min(arg_number(2), MAX_BATCH)
writable(K_JOBS, K_DONE, K_DEAD, K_COUNTS)
local ids = redis.call('ZRANGEBYSCORE', K_DONE, '-inf', now_ms(), 'LIMIT', 0, limit)
local keys, uncounted, owned = {}, {}, {}
for _, id in ipairs(ids) do
  local key = job_key(id)
  local v = read_job(key, 'st', 'ik', 'owner')
  keys[#keys + 1] = key
  if v and v[2] then keys[#keys + 1] = idem_key(v[3], v[2]) end
  if v and v[3] then
    owned[v[3]] = owned[v[3]] or {}
    push(owned[v[3]], id)
  end
  if v and v[1] then uncounted[v[1]] = (uncounted[v[1]] or 0) - 1 end
end
-- Owner indexes are written too: they must be sorted sets (or nothing yet).
for owner in pairs(owned) do
  local t = redis.call('TYPE', owner_index(owner))['ok']
  if t ~= 'none' and t ~= 'zset' then fail('WRONGTYPE ' .. owner_index(owner) .. ' is not a zset; nothing was changed') end
end
-- Writes: the counters first (HINCRBY is denyoom: out of memory, the call is refused whole).
for status, n in pairs(uncounted) do redis.call('HINCRBY', K_COUNTS, status, n) end
for first = 1, #keys, CHUNK do redis.call('DEL', unpack(keys, first, math.min(first + CHUNK - 1, #keys))) end
call_chunked('ZREM', K_JOBS, nil, ids)
call_chunked('ZREM', K_DONE, nil, ids)
call_chunked('ZREM', K_DEAD, nil, ids)
for owner, list in pairs(owned) do call_chunked('ZREM', owner_index(owner), nil, list) end
return #ids
