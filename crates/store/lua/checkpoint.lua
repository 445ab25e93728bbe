-- Checkpoint the Heat loop: the phase and the handler's progress object.
-- ARGV: prefix, id, token, phase, progress object (msgpack)
-- Returns 1 = saved, 2 = saved and cancel requested, 0 = lease lost.
local id, token = ARGV[2], ARGV[3]
local key = job_key(id)
local v = check_lease(key, token, 'creq')
if not v then return 0 end
redis.call('HSET', key, 'ph', ARGV[4], 'cp', ARGV[5], 'ut', now_ms())
return (v[4] == '1') and 2 or 1
