-- Forget an idle queue: no jobs of any kind (ready, delayed, leased, retained) and no
-- enqueue for `idle` ms. Deletes its remaining keys (the empty stream and its group,
-- counters, the pins of `leases` and `waiting`); the next enqueue finds no `used` mark, creates the group again and has the
-- caller register the queue.
-- ARGV: prefix, idle ms. Returns 'OK' (forgotten) or 'IN_USE'.
local idle = arg_number(2)
local K_USED = PREFIX .. 'used'
local used = tonumber(redis.call('GET', K_USED) or '0')
if used > now_ms() - idle then return 'IN_USE' end
if redis.call('XLEN', K_STREAM) > 0 or redis.call('ZCARD', K_DELAYED) > 0
  or redis.call('ZCOUNT', K_LEASES, '(-inf', '+inf') > 0 or redis.call('ZCARD', K_JOBS) > 0
  or redis.call('EXISTS', K_PRIOS) == 1 or redis.call('EXISTS', K_SETTINGS) == 1
  or redis.call('HLEN', K_WAITING) > redis.call('HEXISTS', K_WAITING, WAITING_PIN) then
  return 'IN_USE'
end
redis.call('DEL', K_STREAM, K_COUNTS, K_DONE, K_DEAD, K_USED, K_ACTIVE, K_LEASES, K_WAITING)
return 'OK'
