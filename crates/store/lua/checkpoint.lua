-- Checkpoint the Heat loop: the phase and the handler's progress object.
-- ARGV: prefix, id, token, phase, progress object (msgpack)
-- Returns 'OK' (saved), 'CANCEL_REQUESTED' (saved, and a cancel was requested) or 'LOST'.
local id, token = ARGV[2], ARGV[3]
local key = job_key(id)
local v = check_lease(key, token, 'creq')
if not v then return 'LOST' end
redis.call('HSET', key, 'ph', ARGV[4], 'cp', ARGV[5], 'ut', now_ms())
return (v[4] == '1') and 'CANCEL_REQUESTED' or 'OK'
