-- Set a job's name and/or description (Xen name_label / name_description).
-- ARGV: prefix, id, owner ('' = any), then field/value pairs ('name', 'desc').
-- Returns 'OK' or 'NOT_FOUND'.
local id, owner = ARGV[2], ARGV[3]
local key = job_key(id)
local v = redis.call('HMGET', key, 'st', 'owner', 'w')
if not v[1] or (owner ~= '' and v[2] ~= owner) then return 'NOT_FOUND' end
redis.call('HSET', key, 'ut', now_ms(), unpack(ARGV, 4))
notify(id, v[3])
return 'OK'
