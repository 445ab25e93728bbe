-- Puts back what a process of an older layout leaves behind beside layout 3 to 5 records
-- (docs/OPERATIONS.md, upgrading the layout), for jobs the consistency check named:
--   * a layout 1 or 2 worker takes an `n=<id>` stream entry for a stale one and trims
--     it: its job stays pending with no entry, which no claim would ever find. It is
--     made ready again (a `j` entry, or its list) and indexed in `jobs`;
--   * a layout 1 or 2 cancel ends a job of an `n` entry without the `jobs` entry
--     layout 3 gives a job as it leaves the stream: no listing would show it. It is
--     indexed in `jobs` by its creation time;
--   * a layout 3 or older worker trims a `w` entry (layout 4) as stale too, and a
--     layout 4 worker one whose `waiting` value is packed (layout 5): its job gets its
--     record and is made ready again like the first.
-- Each job is checked again here (the check's reading may be old): a job with a live
-- entry, a delayed one, or one already in `jobs` is left as it is.
-- ARGV: prefix, ids (at most MAX_BATCH)
-- Returns {readied, indexed}.
bounded(#ARGV - 1)
writable(K_STREAM, K_DELAYED, K_JOBS)
local now = now_ms()
local stranded, indexed, seen = {}, 0, {}
for i = 2, #ARGV do
  local id = ARGV[i]
  if not seen[id] then
    seen[id] = true
    local st, sid, pri, grp, created_at, ext =
      unpack(read_job(job_key(id), 'st', 'sid', 'pri', 'grp', 'ct', 'ext') or {})
    -- A waiting job whose `w` entry was trimmed is stranded like a job of a trimmed
    -- `n` entry: it gets its record below, before it is made ready.
    local waited = not st and waiting_job(id)
    if waited then st, sid, created_at = 'pending', waited.sid, waited.ct end
    local in_jobs = redis.call('ZSCORE', K_JOBS, id)
    local on_stream = sid and string.match(sid, '^%d+%-%d+$')
    local live = false
    if on_stream then
      local entry = redis.call('XRANGE', K_STREAM, sid, sid)[1]
      live = entry ~= nil and entry_of(entry, id)
    end
    if st == 'pending' and on_stream and not live and not ext
      and not redis.call('ZSCORE', K_DELAYED, id) then
      routable(pri, grp)
      stranded[#stranded + 1] = {id = id, pri = pri, grp = grp, waited = waited}
      if not in_jobs then push(created, created_at or '0', id) end
    elseif st and not in_jobs and not (st == 'pending' and live) then
      push(created, created_at or '0', id)
      indexed = indexed + 1
    end
  end
end
-- Writes: the stream entries first (denyoom), then the index.
for _, job in ipairs(stranded) do
  if job.waited then write_waiting_record(job.id, job.waited) end
  make_ready(job_key(job.id), job.id, now, job.pri, job.grp)
end
flush()
return {#stranded, indexed}
