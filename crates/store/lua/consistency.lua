-- Read-only: one bounded step of the check that a queue's records, stream, indexes
-- and counters agree. A walk over a large queue in one script would block every
-- client of Redis (about 9 µs per job), so the caller walks in steps of `n` items,
-- each step atomic over the jobs it covers:
--   'jobs'     every retained job against the stream, leases, delayed, done and dead
--              (point lookups), and its final status counted;
--   'leases', 'delayed', 'done', 'dead', 'ext'
--              every index member is a retained job;
--   'stream'   every entry is the live entry of a pending job;
--   'records'  every record not in `jobs` (a job enqueued straight onto the stream, which
--              enters `jobs` when it leaves it) is checked as the 'jobs' phase checks
--              indexed ones: found by SCAN over the node's keys (MATCH the queue's records);
--   'waiting'  every job of `waiting` (layouts 4, 5: no record while on the stream) has its
--              live `w` entry and no record, and is not indexed (HSCAN).
-- ARGV: prefix, phase, cursor ('' = from the start; "score member" in a sorted set,
--       an entry id in the stream, a SCAN or HSCAN cursor), n.
-- Returns {next phase ('' = done), next cursor, {problems}, success, failure, cancelled
--          (final records in this step), counts.success, counts.failure, counts.cancelled,
--          {links}, {mendable}}: the tree links this script cannot follow (another slot), for
--          the caller to check: 'c <id> <parent> <parent queue>' for a child whose parent is
--          in another queue, 'p <id>' for a parent with a list of children; and the jobs an
--          older layout's process left behind that mend.lua puts back (a pending job whose
--          stream entry is gone, a job that left the stream without entering `jobs`).
local phase, cursor, n = ARGV[2], ARGV[3], math.max(1, math.min(arg_number(4), MAX_BATCH))
local problems, links, mendable = {}, {}, {}
local function problem(text) problems[#problems + 1] = text end
local finals = {success = 0, failure = 0, cancelled = 0}
local ORDER = {jobs = 'leases', leases = 'delayed', delayed = 'done', done = 'dead', dead = 'ext', ext = 'stream',
  stream = 'records', records = 'waiting', waiting = ''}
local ZSETS = {jobs = K_JOBS, leases = K_LEASES, delayed = K_DELAYED, done = K_DONE, dead = K_DEAD, ext = ext_key()}
if not ORDER[phase] then fail('ERR unknown phase ' .. tostring(phase)) end

-- The next `n` members (with scores) of a sorted set after the cursor. A member's
-- rank moves when others come and go, so the cursor is the last member and its score;
-- when that member has left (expired, renewed), the walk resumes where it stood.
local function page(key)
  local start = 0
  if cursor ~= '' then
    local score, member = string.match(cursor, '^(%S+) (.+)$')
    local rank = redis.call('ZRANK', key, member)
    if rank and redis.call('ZSCORE', key, member) == score then
      start = rank + 1
    else
      start = redis.call('ZCOUNT', key, '-inf', '(' .. score)
      for _, m in ipairs(redis.call('ZRANGE', key, score, score, 'BYSCORE')) do
        if m <= member then start = start + 1 end
      end
    end
  end
  return redis.call('ZRANGE', key, start, start + n - 1, 'WITHSCORES')
end

-- Whether a pending job's list (or held) entry is where its record says: its list is
-- in its priority's ring (a point lookup; the entry itself would need a list walk).
local function listed(sid, pri, grp, job_type)
  local p, g = pri or '5', grp or ''
  if sid == 'H' then return redis.call('EXISTS', held_list(job_type or '')) == 1 end
  return redis.call('ZSCORE', ring_key(p), g) ~= false and redis.call('EXISTS', ready_list(p, g)) == 1
end

local function check_job(id)
  local v = read_job(job_key(id), 'st', 'sid', 'dead', 'ft', 'pri', 'grp', 'type', 'ext', 'par', 'pq')
  if not v then return problem('job ' .. id .. ' is not a hash') end
  local st, sid, dead_flag, finished, pri, grp, job_type, ext, par, pq = unpack(v)
  if not st then return problem('job ' .. id .. ' is indexed but has no record') end
  -- (A missing member reads as false in Lua, not nil.)
  local in_leases = redis.call('ZSCORE', K_LEASES, id) ~= false
  local scheduled = redis.call('ZSCORE', K_DELAYED, id) ~= false
  local in_done = redis.call('ZSCORE', K_DONE, id) ~= false
  local in_dead = redis.call('ZSCORE', K_DEAD, id) ~= false
  -- A child whose parent is in this queue (one slot) is on its parent's list while the
  -- parent's record exists (a parent in another queue is checked from there).
  if par and PREFIX == 'tether:{' .. tostring(pq) .. '}:' and redis.call('EXISTS', job_key(par)) == 1
    and not redis.call('ZSCORE', PREFIX .. 'kids:' .. par, id .. ' ' .. pq) then
    problem('child ' .. id .. ' is missing from the list of its parent ' .. par)
  end
  if par and pq and PREFIX ~= 'tether:{' .. pq .. '}:' then links[#links + 1] = 'c ' .. id .. ' ' .. par .. ' ' .. pq end
  if redis.call('EXISTS', PREFIX .. 'kids:' .. id) == 1 then links[#links + 1] = 'p ' .. id end
  -- An external task's lease is in `ext` while it is not final, and nowhere else.
  if ext and (redis.call('ZSCORE', ext_key(), id) ~= false) == is_final(st) then
    problem(st .. ' external task ' .. id .. (is_final(st) and ' still has' or ' has no') .. ' lease in ext')
  end
  if st == 'processing' and not in_leases and not ext then problem('processing job ' .. id .. ' has no lease') end
  -- A running job of a group missing from the group's lease set would not count
  -- against the group's concurrency limit.
  if st == 'processing' and grp and not redis.call('ZSCORE', group_leases(grp), id) then
    problem('processing job ' .. id .. ' is missing from the lease set of group ' .. grp)
  end
  if st ~= 'processing' and in_leases then problem(st .. ' job ' .. id .. ' holds a lease') end
  if st == 'pending' and not ext then
    local ready = false
    if sid == 'L' or sid == 'H' then
      ready = listed(sid, pri, grp, job_type)
      if not ready then problem('pending job ' .. id .. ' is not in the list its record names') end
    elseif sid then
      local entry = redis.call('XRANGE', K_STREAM, sid, sid)[1]
      ready = entry ~= nil and entry_of(entry, id)
    end
    if not ready and not scheduled then
      problem('pending job ' .. id .. ' is neither ready nor scheduled')
      -- (Its entry was trimmed, as an older layout's worker does with `n` entries.)
      if sid and sid ~= 'L' and sid ~= 'H' then mendable[#mendable + 1] = id end
    end
    if ready and scheduled then problem('pending job ' .. id .. ' is both ready and scheduled') end
  elseif scheduled then
    problem(st .. ' job ' .. id .. ' is scheduled')
  end
  if is_final(st) then
    finals[st] = finals[st] + 1
    if not in_done then problem('finished job ' .. id .. ' is missing from done') end
    if not finished then problem('finished job ' .. id .. ' has no finish time') end
  elseif in_done then
    problem(st .. ' job ' .. id .. ' is in done')
  end
  if (st == 'failure' and dead_flag == '1') ~= in_dead then problem('job ' .. id .. ' dead flag and dead index disagree') end
end

-- A member of an index whose job has neither an entry in `jobs` nor a record (a record
-- not in `jobs` is the 'records' phase's).
local function unknown(id)
  return not redis.call('ZSCORE', K_JOBS, id) and redis.call('EXISTS', job_key(id)) == 0
end

local next_cursor = ''
if phase == 'waiting' then
  local reply = redis.call('HSCAN', K_WAITING, cursor == '' and '0' or cursor, 'COUNT', n)
  local fields = reply[2]
  for i = 1, #fields, 2 do
    local raw, value = fields[i], fields[i + 1]
    local id = #raw == 16 and full_id(raw) or nil
    local sid = parse_waiting(value)
    if raw == WAITING_PIN then
      -- (No job: it keeps the hash's encoding.)
    elseif not id or not sid then
      problem('waiting holds a malformed job ' .. (id or '(a field of ' .. #raw .. ' bytes)'))
    else
      local entry = redis.call('XRANGE', K_STREAM, sid, sid)[1]
      if not (entry and entry[2][1] == 'w' and entry[2][2] == raw) then
        problem('pending job ' .. id .. ' is neither ready nor scheduled')
        mendable[#mendable + 1] = id
      end
      if redis.call('EXISTS', job_key(id)) == 1 then problem('waiting job ' .. id .. ' also has a record') end
      if redis.call('ZSCORE', K_JOBS, id) then problem('waiting job ' .. id .. ' is in jobs') end
    end
  end
  if reply[1] ~= '0' then next_cursor = reply[1] end
elseif phase == 'records' then
  local reply = redis.call('SCAN', cursor == '' and '0' or cursor, 'MATCH', PREFIX .. 'job:*', 'COUNT', n)
  for _, key in ipairs(reply[2]) do
    local id = string.sub(key, #PREFIX + 5)
    if not redis.call('ZSCORE', K_JOBS, id) then
      local v = read_job(key, 'st', 'sid')
      local st, sid = unpack(v or {})
      if v and st and (st ~= 'pending' or not sid or not string.match(sid, '^%d+%-%d+$')) then
        problem(st .. ' job ' .. id .. ' is missing from jobs')
        mendable[#mendable + 1] = id
      end
      check_job(id)
    end
  end
  if reply[1] ~= '0' then next_cursor = reply[1] end
elseif phase == 'stream' then
  local from = (cursor == '') and '-' or ('(' .. cursor)
  local entries = redis.call('XRANGE', K_STREAM, from, '+', 'COUNT', n)
  for _, e in ipairs(entries) do
    local kind, id = e[2][1], e[2][2]
    local waiting_value = nil
    if kind == 'w' then
      -- A waiting job: its value names this entry; given a record since (unwait), its
      -- entry is read as an `n` one.
      waiting_value = #id == 16 and redis.call('HGET', K_WAITING, id)
      id = #id == 16 and full_id(id) or '(malformed)'
      kind = 'n'
    end
    if waiting_value then
      if parse_waiting(waiting_value) ~= e[1] then
        problem('waiting job ' .. id .. ' has a stream entry ' .. e[1] .. ' that is not its live one')
      end
    elseif kind == 'd' then
      -- A wake-up entry for workers (a job went to a list); claims trim it.
    elseif kind == 'n' and unknown(id) or kind ~= 'n' and not redis.call('ZSCORE', K_JOBS, id) then
      -- (`n`: a job enqueued straight onto the stream, not in `jobs` until it leaves.)
      problem('stream holds unknown job ' .. id)
    else
      local v = read_job(job_key(id), 'st', 'sid')
      local st, sid = unpack(v or {})
      if v and (st ~= 'pending' or sid ~= e[1]) then
        problem(tostring(st) .. ' job ' .. id .. ' has a stream entry ' .. e[1] .. ' that is not its live one')
      end
    end
  end
  if #entries == n then next_cursor = entries[#entries][1] end
else
  if phase == 'jobs' and cursor == '' then
    -- (No claim reads the group; a queue without one, or without a stream, has none.)
    local summary = redis.pcall('XPENDING', K_STREAM, GROUP)
    local pending_entries = summary.err and 0 or summary[1]
    if tonumber(pending_entries) ~= 0 then problem(pending_entries .. ' stream entries delivered but not acknowledged') end
  end
  local items = page(ZSETS[phase])
  for i = 1, #items, 2 do
    local id = items[i]
    if phase == 'jobs' then
      check_job(id)
    elseif phase == 'leases' and id == LEASES_PIN then
      -- (No job: it keeps the sorted set's encoding.)
    elseif unknown(id) then
      -- (A waiting job has no record: it is known, and belongs in no index.)
      if is_waiting(id) then problem('pending job ' .. id .. ' is in ' .. phase)
      else problem(phase .. ' holds unknown job ' .. id) end
    end
  end
  if #items == 2 * n then next_cursor = items[#items] .. ' ' .. items[#items - 1] end
end

local next_phase = phase
if next_cursor == '' then next_phase = ORDER[phase] end
local success, failure, cancelled = unpack(redis.call('HMGET', K_COUNTS, 'success', 'failure', 'cancelled'))
return {next_phase, next_cursor, problems, finals.success, finals.failure, finals.cancelled,
  tonumber(success) or 0, tonumber(failure) or 0, tonumber(cancelled) or 0, links, mendable}
