-- Record a schedule's firings and move it to its next fire time, if nobody changed it
-- since it was taken (its `next` is still the one the firer saw).
-- KEYS: due, the schedule's hash. ARGV: member, expected next, new next (-1: none),
-- last fire ms ('' = unchanged), last job id ('' = unchanged).
-- Returns 'OK' or 'STALE'.
local K_DUE, K_S = KEYS[1], KEYS[2]
local member, expected, nxt, last, job = ARGV[1], ARGV[2], finite_number(ARGV[3]), ARGV[4], ARGV[5]
local next_fire, paused = unpack(redis.call('HMGET', K_S, 'next', 'paused'))
if not next_fire or next_fire ~= expected then
  if next_fire then redis.call('HSET', K_S, 'lease', 0) end
  return 'STALE'
end
if not nxt then error({err = 'ERR the next fire time is not a number'}) end
zsets_writable(K_DUE)
redis.call('HSET', K_S, 'next', nxt, 'lease', 0)
if last ~= '' then redis.call('HSET', K_S, 'last', last) end
if job ~= '' then redis.call('HSET', K_S, 'job', job) end
if nxt >= 0 and paused ~= '1' then
  redis.call('ZADD', K_DUE, nxt, member)
else
  redis.call('ZREM', K_DUE, member)
end
return 'OK'
