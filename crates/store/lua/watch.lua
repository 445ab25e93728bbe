-- Mark a job as watched, so the scripts announce its changes on its channel.
-- ARGV: prefix, id. Returns 'OK' or 'NOT_FOUND'.
local key = job_key(ARGV[2])
unwait(ARGV[2])
if redis.call('EXISTS', key) == 0 then return 'NOT_FOUND' end
redis.call('HSET', key, 'w', 1)
return 'OK'
