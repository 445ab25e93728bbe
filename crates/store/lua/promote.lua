-- Move due delayed jobs (delayed starts and retry backoffs) to where ready jobs wait
-- (the stream, or their priority and group's list).
-- ARGV: prefix, limit (at most MAX_BATCH are moved per call)
-- Returns {promoted, ms until the next due job (-1 = none)}.
local limit = math.min(arg_number(2), MAX_BATCH)
writable(K_STREAM, K_DELAYED)
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, limit)
local ready = {}
for _, id in ipairs(ids) do
  local st, pri, grp = unpack(read_job(job_key(id), 'st', 'pri', 'grp') or {})
  if st == 'pending' then
    routable(pri, grp)
    ready[#ready + 1] = {id = id, pri = pri, grp = grp}
  end
  push(undelayed, id)
end
-- Writes: the stream entries first (denyoom), then the index removal.
for _, job in ipairs(ready) do make_ready(job_key(job.id), job.id, now, job.pri, job.grp) end
flush()
local next_due = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
if next_due[2] then return {#ids, math.max(0, tonumber(next_due[2]) - now)} end
return {#ids, -1}
