-- Forget an idle queue: no jobs of any kind (ready, delayed, leased, retained) and no
-- enqueue for `idle` ms. Deletes its remaining keys (the empty stream and its group,
-- counters); the next enqueue finds no `used` mark, creates the group again and has the
-- caller register the queue.
-- ARGV: prefix, idle ms. Returns 1 when forgotten, 0 when the queue is in use.
local idle = tonumber(ARGV[2])
local K_USED = PREFIX .. 'used'
local used = tonumber(redis.call('GET', K_USED) or '0')
if used > now_ms() - idle then return 0 end
if redis.call('XLEN', K_STREAM) > 0 or redis.call('ZCARD', K_DELAYED) > 0
  or redis.call('ZCARD', K_LEASES) > 0 or redis.call('ZCARD', K_JOBS) > 0
  or redis.call('ZCARD', K_PRIOS) > 0 or redis.call('EXISTS', K_SETTINGS) == 1 then
  return 0
end
redis.call('DEL', K_STREAM, K_COUNTS, K_DONE, K_DEAD, K_USED, K_ACTIVE)
return 1
