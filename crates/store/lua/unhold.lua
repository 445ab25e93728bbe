-- Resume a paused job type: its held jobs go back where they wait when ready (the
-- type must be out of the paused list first, or the next claim holds them again).
-- ARGV: prefix, type, limit (at most MAX_BATCH per call; the caller repeats until 0)
-- Returns how many entries were taken from the held list.
local job_type, limit = ARGV[2], math.min(arg_number(3), MAX_BATCH)
local list = held_list(job_type)
writable(K_STREAM, K_COUNTS)
check_type(list, 'list')
local ids = redis.call('LRANGE', list, 0, limit - 1)
local back = {}
for _, id in ipairs(ids) do
  local st, sid, pri, grp = unpack(read_job(job_key(id), 'st', 'sid', 'pri', 'grp') or {})
  if st == 'pending' and sid == 'H' then
    routable(pri, grp)
    back[#back + 1] = {id = id, pri = pri, grp = grp}
  end
end
-- Writes.
if #ids > 0 then
  redis.call('LTRIM', list, #ids, -1)
  redis.call('HINCRBY', K_COUNTS, 'queued', -#ids)
end
local now = now_ms()
for _, job in ipairs(back) do make_ready(job_key(job.id), job.id, now, job.pri, job.grp) end
return #ids
