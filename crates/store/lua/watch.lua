-- Mark a job as watched, so the scripts announce its changes on its channel.
-- ARGV: prefix, id. Returns 1 when the job exists.
local key = job_key(ARGV[2])
if redis.call('EXISTS', key) == 0 then return 0 end
redis.call('HSET', key, 'w', 1)
return 1
