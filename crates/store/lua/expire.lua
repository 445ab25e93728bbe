-- Retention: delete finished jobs past expires_at, with their index entries.
-- ARGV: prefix, limit (at most MAX_BATCH are deleted per call). Returns how many were deleted.
local limit = math.min(arg_number(2), MAX_BATCH)
writable(K_JOBS, K_DONE, K_DEAD, K_COUNTS)
local ids = redis.call('ZRANGEBYSCORE', K_DONE, '-inf', now_ms(), 'LIMIT', 0, limit)
local keys = {}
for _, id in ipairs(ids) do
  local key = job_key(id)
  local st, idem, owner = unpack(read_job(key, 'st', 'ik', 'owner') or {})
  keys[#keys + 1] = key
  keys[#keys + 1] = PREFIX .. 'kids:' .. id -- its children's list, if it had any
  if idem then keys[#keys + 1] = idem_key(owner, idem) end
  if owner then push_for(disowned, owner, id) end
  if st then counted[st] = (counted[st] or 0) - 1 end
  push(uncreated, id)
  push(undone, id)
  push(undead, id)
end
owner_indexes_writable(disowned)
-- Writes: flush() first (its first write, a count's HINCRBY, is denyoom: out of memory,
-- the call is refused whole), then the records and idempotency keys.
flush()
for first = 1, #keys, CHUNK do redis.call('DEL', unpack(keys, first, math.min(first + CHUNK - 1, #keys))) end
return #ids
