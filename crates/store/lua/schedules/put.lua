-- Create or replace a schedule.
-- KEYS: all, due, the schedule's hash. ARGV: member, spec (JSON), anchor ms, next fire ms
-- (-1: none), mode ('create': refuse an existing one; 'replace': must exist, keeps its
-- history), the owner's member prefix ('<owner>/'), the most schedules one owner may have.
-- Returns 'OK', 'EXISTS', 'NOT_FOUND' or 'LIMIT'.
local K_ALL, K_DUE, K_S = KEYS[1], KEYS[2], KEYS[3]
local member, spec, anchor, nxt, mode = ARGV[1], ARGV[2], ARGV[3], finite_number(ARGV[4]), ARGV[5]
local owner_prefix, limit = ARGV[6], finite_number(ARGV[7])
if not limit then error({err = 'ERR the schedule limit is not a number'}) end
local now = now_ms()
local stored_spec, paused_flag = unpack(redis.call('HMGET', K_S, 'spec', 'paused'))
local exists = stored_spec ~= false
if exists and mode == 'create' then return 'EXISTS' end
if not exists and mode == 'replace' then return 'NOT_FOUND' end
-- '0' is the character after '/': the range holds the members '<owner>/…'.
if not exists and redis.call('ZLEXCOUNT', K_ALL, '[' .. owner_prefix,
    '(' .. string.sub(owner_prefix, 1, -2) .. '0') >= limit then
  return 'LIMIT'
end
if not nxt then error({err = 'ERR the next fire time is not a number'}) end
zsets_writable(K_ALL, K_DUE)
local paused = exists and paused_flag == '1'
if exists then
  redis.call('HSET', K_S, 'spec', spec, 'next', nxt, 'ut', now, 'lease', 0)
else
  redis.call('HSET', K_S, 'spec', spec, 'anchor', anchor, 'next', nxt, 'paused', 0, 'ct', now, 'ut', now, 'lease', 0)
  redis.call('ZADD', K_ALL, 0, member)
end
if nxt >= 0 and not paused then
  redis.call('ZADD', K_DUE, nxt, member)
else
  redis.call('ZREM', K_DUE, member)
end
return 'OK'
