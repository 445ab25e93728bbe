-- Progress report from the lease holder; renews the lease too.
-- ARGV: prefix, id, token, lease ttl ms, progress 0-100, message ('' keeps the old one),
--       eta ms ('' = unknown)
-- Returns {word, deadline} with the word as in renew.lua (deadline 0 when 'LOST').
local id, token, ttl = ARGV[2], ARGV[3], arg_number(4)
local progress, message, eta = ARGV[5], ARGV[6], ARGV[7]
if not eta then fail('ERR progress takes 7 arguments') end
local key = job_key(id)
local refusal, creq, watched = check_lease(key, token, 'creq', 'w')
if refusal then return {'LOST', 0} end
writable(K_LEASES)
local now = now_ms()
redis.call('HSET', key, 'pg', progress, 'ut', now)
if message ~= '' then redis.call('HSET', key, 'pmsg', message) end
if eta ~= '' then redis.call('HSET', key, 'eta', eta) else redis.call('HDEL', key, 'eta') end
push(renewed, now + ttl, id)
notify(id, watched)
flush()
return {(creq == '1') and 'CANCEL_REQUESTED' or 'OK', now + ttl}
