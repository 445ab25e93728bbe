-- Set a job's name and/or description (Xen name_label / name_description).
-- ARGV: prefix, id, owner ('' = any), then field/value pairs ('name', 'desc').
-- Returns 'OK' or 'NOT_FOUND'.
local id, owner = ARGV[2], ARGV[3]
local key = job_key(id)
if owner == '' then unwait(id) end
local st, job_owner, watched = unpack(redis.call('HMGET', key, 'st', 'owner', 'w'))
if not st or (owner ~= '' and job_owner ~= owner) then return 'NOT_FOUND' end
redis.call('HSET', key, 'ut', now_ms(), unpack(ARGV, 4))
notify(id, watched)
return 'OK'
