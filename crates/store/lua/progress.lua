-- Progress report from the lease holder; renews the lease too.
-- ARGV: prefix, id, token, lease ttl ms, progress 0-100, message ('' keeps the old one),
--       eta ms ('' = unknown)
-- Returns {word, deadline} with the word as in renew.lua (deadline 0 when 'LOST').
local id, token, ttl = ARGV[2], ARGV[3], arg_number(4)
local key = job_key(id)
local v = check_lease(key, token, 'creq', 'w')
if not v then return {'LOST', 0} end
writable(K_LEASES)
local now = now_ms()
redis.call('HSET', key, 'pg', ARGV[5], 'ut', now)
if ARGV[6] ~= '' then redis.call('HSET', key, 'pmsg', ARGV[6]) end
if ARGV[7] ~= '' then redis.call('HSET', key, 'eta', ARGV[7]) else redis.call('HDEL', key, 'eta') end
redis.call('ZADD', K_LEASES, 'XX', now + ttl, id)
notify(id, v[5])
return {(v[4] == '1') and 'CANCEL_REQUESTED' or 'OK', now + ttl}
