-- Checkpoint the Heat loop: the phase and the handler's progress object.
-- ARGV: prefix, id, token, phase, progress object (msgpack)
-- Returns 'OK' (saved), 'CANCEL_REQUESTED' (saved, and a cancel was requested) or 'LOST'.
local id, token, phase, progress_object = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local key = job_key(id)
local refusal, creq = check_lease(key, token, 'creq')
if refusal then return 'LOST' end
redis.call('HSET', key, 'ph', phase, 'cp', progress_object, 'ut', now_ms())
return (creq == '1') and 'CANCEL_REQUESTED' or 'OK'
