-- Graceful shutdown: hand leases back at once, without spending an attempt.
-- ARGV: prefix, retention ms, then id, token pairs (at most MAX_BATCH).
-- Returns how many were handed back.
-- A job whose cancel was requested is recorded cancelled instead.
local retention = arg_number(2)
bounded((#ARGV - 2) / 2)
writable(K_STREAM, K_LEASES, K_DONE, K_DEAD, K_COUNTS)
local now = now_ms()

-- Phase 1: read every lease.
local held, seen = {}, {}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  if not seen[id] then
    seen[id] = true
    local v = check_lease(job_key(id), token, 'creq', 'w', 'att')
    if v then held[#held + 1] = {id, v} end
  end
end

-- Phase 2: writes.
for _, job in ipairs(held) do
  local id, v = job[1], job[2]
  local key = job_key(id)
  if v[4] == '1' then
    finalize(key, id, 'cancelled', now, retention, v[5], {'ec', 'RequestCanceled', 'msg', 'cancelled on request'})
  else
    redis.call('HSET', key, 'att', math.max((tonumber(v[6]) or 1) - 1, 0))
    push(unleased, id)
    make_ready(key, id, now)
    notify(id, v[5])
  end
end
flush()
return #held
