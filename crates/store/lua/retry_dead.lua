-- Re-queue a dead job by id: a fresh run with all its attempts.
-- ARGV: prefix, id, owner ('' = any)
-- Returns 'OK', 'NOT_FOUND' or 'INVALID:<status>'.
local id, owner = ARGV[2], ARGV[3]
local key = job_key(id)
local v = redis.call('HMGET', key, 'st', 'owner', 'dead', 'w', 'pri', 'grp')
if not v[1] or (owner ~= '' and v[2] ~= owner) then return 'NOT_FOUND' end
if v[1] ~= 'failure' or v[3] ~= '1' then return 'INVALID:' .. v[1] end
writable(K_STREAM, K_DONE, K_DEAD, K_COUNTS, K_ACTIVE)
routable(v[5], v[6])
-- Writes, a denyoom one first.
redis.call('HSET', key, 'att', 0, 'dead', 0, 'pg', 0)
-- A start deadline applied to the first run; a re-queue is a new one (without a deadline).
redis.call('HDEL', key, 'ec', 'ei', 'msg', 'res', 'ft', 'xt', 'eta', 'ph', 'cp', 'pmsg', 'ra', 'sb')
redis.call('ZREM', K_DEAD, id)
redis.call('ZREM', K_DONE, id)
redis.call('HINCRBY', K_COUNTS, 'failure', -1)
if v[2] and v[2] ~= '' then redis.call('HINCRBY', K_ACTIVE, v[2], 1) end
make_ready(key, id, now_ms(), v[5], v[6])
notify(id, v[4])
return 'OK'
