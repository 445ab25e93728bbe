-- Move due delayed jobs (delayed starts and retry backoffs) into the stream.
-- ARGV: prefix, limit
-- Returns {promoted, ms until the next due job (-1 = none)}.
local limit = tonumber(ARGV[2])
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  redis.call('ZREM', K_DELAYED, id)
  local key = job_key(id)
  if redis.call('HGET', key, 'st') == 'pending' then make_ready(key, id, now) end
end
local next_due = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
if next_due[2] then return {#ids, math.max(0, tonumber(next_due[2]) - now)} end
return {#ids, -1}
