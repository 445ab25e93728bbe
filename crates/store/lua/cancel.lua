-- CancelTask from a producer.
-- ARGV: prefix, id, owner ('' = any), retention ms, force ('1': ignore `cancelable`; admins only,
--       checked by the caller)
-- Returns 'CANCELLED' (was pending), 'REQUESTED' (running: the worker stops it),
-- 'NOT_FOUND', 'NOT_SUPPORTED' or 'INVALID:<status>'.
local id, owner, retention, force = ARGV[2], ARGV[3], arg_number(4), ARGV[5]
local key = job_key(id)
local v = redis.call('HMGET', key, 'st', 'owner', 'can', 'sid', 'creq', 'w', 'pri', 'grp', 'type')
writable(K_STREAM, K_DELAYED, K_LEASES, K_DONE, K_DEAD, K_COUNTS, K_ACTIVE)
check_type(K_DEADLINES, 'zset')
if v[1] == 'pending' then
  routable(v[7], v[8])
  check_type(held_list(v[9] or ''), 'list')
end
if not v[1] or (owner ~= '' and v[2] ~= owner) then return 'NOT_FOUND' end
local st = v[1]
if st == 'success' or st == 'failure' or st == 'cancelled' then return 'INVALID:' .. st end
if v[3] == '0' and force ~= '1' then return 'NOT_SUPPORTED' end
if st == 'pending' then
  unready(id, v[4], v[7], v[8], v[9])
  redis.call('ZREM', K_DELAYED, id)
  redis.call('ZREM', K_DEADLINES, id)
  finalize(key, id, 'cancelled', now_ms(), retention, v[6],
    {'ec', 'RequestCanceled', 'msg', 'cancelled before it ran'}, v[2])
  flush()
  return 'CANCELLED'
end
-- processing: the lease holder sees the request at its next heartbeat or progress report.
if v[5] ~= '1' then
  redis.call('HSET', key, 'creq', 1, 'ut', now_ms())
  notify(id, v[6])
end
return 'REQUESTED'
