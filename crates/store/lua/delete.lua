-- Delete a finished job now (an operator's purge): for one job, what expire does at
-- the job's expiry time. Owner-checked like cancel.
-- ARGV: prefix, id, owner ('' = any)
-- Returns 'OK', 'NOT_FOUND' or 'INVALID:<status>' (not final: cancel it first).
local id, owner = ARGV[2], ARGV[3]
local key = job_key(id)
local st, idem, job_owner, watched = unpack(read_job(key, 'st', 'ik', 'owner', 'w') or {})
if not st and owner == '' and is_waiting(id) then return 'INVALID:pending' end
if not st or (owner ~= '' and job_owner ~= owner) then return 'NOT_FOUND' end
if not is_final(st) then return 'INVALID:' .. st end
writable(K_JOBS, K_DONE, K_DEAD, K_COUNTS)
if job_owner then push_for(disowned, job_owner, id) end
owner_indexes_writable(disowned)
counted[st] = -1
push(uncreated, id)
push(undone, id)
push(undead, id)
-- Writes: flush() first (its first write, a count's HINCRBY, is denyoom), then the
-- record, its children's list and its idempotency key.
flush()
local keys = {key, PREFIX .. 'kids:' .. id}
if idem then keys[#keys + 1] = idem_key(job_owner, idem) end
redis.call('DEL', unpack(keys))
notify(id, watched)
return 'OK'
