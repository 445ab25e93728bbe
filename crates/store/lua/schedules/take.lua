-- Take the schedules that are due, for one worker to fire (any worker runs this; no
-- leader). A taken schedule is leased for a moment so other workers leave it alone;
-- firing is safe without the lease too, since a firing's job id is derived from the
-- schedule and the fire time.
-- KEYS: due. ARGV: key prefix of schedule hashes, limit, lease ms.
-- Returns {now, ms until the next schedule not taken is due (-1: none), rows} with rows
-- {member, spec, anchor, next, last, job}.
local K_DUE = KEYS[1]
local prefix, limit, lease = ARGV[1], finite_number(ARGV[2]), finite_number(ARGV[3])
if not limit or not lease then error({err = 'ERR the limit and the lease must be numbers'}) end
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', K_DUE, '-inf', now, 'LIMIT', 0, limit)
-- Reads first, writes after.
local found = {}
for i, member in ipairs(due) do
  found[i] = redis.call('HMGET', prefix .. member, 'spec', 'anchor', 'next', 'last', 'job', 'lease', 'paused')
end
local rows, gone = {}, {}
local wait = -1
for i, member in ipairs(due) do
  local spec, anchor, next_fire, last, job, lease_until, paused = unpack(found[i])
  local leased_for = (tonumber(lease_until) or 0) - now
  if not spec or paused == '1' then
    gone[#gone + 1] = member
  elseif leased_for <= 0 then
    rows[#rows + 1] = {member, spec, anchor, next_fire, last or '', job or ''}
  elseif wait < 0 or leased_for < wait then
    -- Leased by another worker: look again when its lease ends.
    wait = leased_for
  end
end
for _, row in ipairs(rows) do
  redis.call('HSET', prefix .. row[1], 'lease', now + lease)
end
for _, member in ipairs(gone) do
  redis.call('ZREM', K_DUE, member)
end
if #due < limit then
  local later = redis.call('ZRANGEBYSCORE', K_DUE, '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if later[2] then
    local until_next = tonumber(later[2]) - now
    if wait < 0 or until_next < wait then wait = until_next end
  end
else
  wait = 0
end
return {now, wait, rows}
