-- Re-queue a dead job by id: a fresh run with all its attempts.
-- ARGV: prefix, id, owner ('' = any)
-- Returns 'OK', 'NOT_FOUND', 'INVALID:<status>' or 'NOT_SUPPORTED' (an external task: no
-- worker would run it).
local id, owner = ARGV[2], ARGV[3]
local key = job_key(id)
local st, job_owner, is_dead, watched, pri, grp, ext =
  unpack(redis.call('HMGET', key, 'st', 'owner', 'dead', 'w', 'pri', 'grp', 'ext'))
if not st and owner == '' and is_waiting(id) then return 'INVALID:pending' end
if not st or (owner ~= '' and job_owner ~= owner) then return 'NOT_FOUND' end
if st ~= 'failure' or is_dead ~= '1' then return 'INVALID:' .. st end
if ext then return 'NOT_SUPPORTED' end
writable(K_STREAM, K_DONE, K_DEAD, K_COUNTS, K_ACTIVE)
countable({[job_owner] = true})
routable(pri, grp)
-- Writes, a denyoom one first.
redis.call('HSET', key, 'att', 0, 'dead', 0, 'pg', 0)
-- A start deadline applied to the first run; a re-queue is a new one (without a deadline).
redis.call('HDEL', key, 'ec', 'ei', 'msg', 'res', 'ft', 'xt', 'eta', 'ph', 'cp', 'pmsg', 'ra', 'sb')
push(undead, id)
push(undone, id)
counted.failure = -1
if job_owner and job_owner ~= '' then active[job_owner] = 1 end
make_ready(key, id, now_ms(), pri, grp)
notify(id, watched)
flush()
return 'OK'
