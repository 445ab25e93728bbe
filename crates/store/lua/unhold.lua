-- Resume a paused job type: its held jobs go back where they wait when ready. Does
-- nothing while the type is still paused (the next claim would hold them again).
-- ARGV: prefix, type, limit (at most MAX_BATCH per call; the caller repeats until 0)
-- Returns how many entries were taken from the held list.
local job_type, limit = ARGV[2], math.min(arg_number(3), MAX_BATCH)
local list = held_list(job_type)
writable(K_STREAM, K_COUNTS)
check_type(list, 'list')
check_type(K_HELD_TYPES, 'set')
for t in string.gmatch(redis.call('HGET', K_SETTINGS, 'ptypes') or '', '[^,]+') do
  if t == job_type then return 0 end
end
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
-- `queued` counts pending listed and held jobs: those put back leave it here (and join
-- it again when make_ready lists them).
if #back > 0 then redis.call('HINCRBY', K_COUNTS, 'queued', -#back) end
if #ids > 0 then redis.call('LTRIM', list, #ids, -1) end
if #ids < limit then redis.call('SREM', K_HELD_TYPES, job_type) end
local now = now_ms()
for _, job in ipairs(back) do make_ready(job_key(job.id), job.id, now, job.pri, job.grp) end
flush()
return #ids
