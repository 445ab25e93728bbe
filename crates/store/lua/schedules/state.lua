-- Pause, resume, delete a schedule, or record a firing made by hand (trigger).
-- KEYS: all, due, the schedule's hash. ARGV: member, action, then by action:
--   'resume': next fire ms (-1: none); 'record': fire ms, job id.
-- Returns 'OK' or 'NOT_FOUND'.
local K_ALL, K_DUE, K_S = KEYS[1], KEYS[2], KEYS[3]
local member, action = ARGV[1], ARGV[2]
if redis.call('EXISTS', K_S) == 0 then return 'NOT_FOUND' end
local now = now_ms()
zsets_writable(K_ALL, K_DUE)
if action == 'pause' then
  redis.call('HSET', K_S, 'paused', 1, 'ut', now)
  redis.call('ZREM', K_DUE, member)
elseif action == 'resume' then
  local nxt = finite_number(ARGV[3])
  if not nxt then error({err = 'ERR the next fire time is not a number'}) end
  redis.call('HSET', K_S, 'paused', 0, 'next', nxt, 'lease', 0, 'ut', now)
  if nxt >= 0 then redis.call('ZADD', K_DUE, nxt, member) end
elseif action == 'delete' then
  redis.call('DEL', K_S)
  redis.call('ZREM', K_DUE, member)
  redis.call('ZREM', K_ALL, member)
elseif action == 'record' then
  redis.call('HSET', K_S, 'last', ARGV[3], 'job', ARGV[4], 'ut', now)
end
return 'OK'
