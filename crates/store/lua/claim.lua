-- Lease up to `count` ready jobs to a worker.
-- ARGV: prefix, count (at most MAX_BATCH), worker id, lease ttl ms, claim id (the
--       caller's random nonce for this call, hex), retention ms (of jobs that expire
--       here, unstarted past their start deadline)
-- Entries are read and removed in this one atomic step, so the stream never
-- holds an entry that was handed out but not leased. The stream's head is the
-- cursor: entries are read from its start (XRANGE), and one XTRIM MINID removes
-- everything up to the last entry consumed, so what a claim leaves is exactly what
-- no claim has consumed. (Each entry is checked against its job's record, `sid`
-- and status, so an entry that were consumed and not trimmed would be passed over
-- as stale, never leased twice.) The queue's consumer group is not read or moved:
-- it is kept for processes of layouts 1-3 built before this, which read from its
-- cursor, and finds the same entries (everything up to it was trimmed).
--
-- Each lease's token is the job's claim counter plus the claim id, so a claim
-- repeated after a failover lost the first one's writes issues another token.
-- The claim id and the jobs it leased are remembered for the worker (one small key
-- that lapses with the leases): the same claim sent again after a lost reply is
-- answered with those jobs instead of leasing more (nothing is written then).
--
-- Flow control (see flow.lua) is applied here, atomically with the lease: a paused
-- queue or type, the queue's concurrency and rate, each group's concurrency and rate,
-- priorities (lowest number first) and round-robin between the groups of a priority.
--
-- Returns {now, lease deadline, wait, reason, then per job its row}, flat. A job that
-- never ran (no option set, no phase or checkpoint, a type with no space) is two
-- strings: its id, and
-- `<epoch> <attempts> <created> <type> <input>` (the input last: its bytes are any).
-- Any other is the number 12 and twelve values: id, epoch, attempts, type, input,
-- created, max, timeout, backoff, phase, checkpoint, run_at ('' for those unset). A
-- lease's token is `<epoch>.<claim id>`. (Every value of a reply costs Redis a
-- conversion, ~1k instructions: five values in one string cost a claim 3 % less. The
-- id is a value of its own because a raw caller's may hold spaces. A row of its own
-- per job would cost a nested reply per job.)
-- Wait is -1, or the ms after
-- which a claim may find work that flow control holds back now, and reason is what held
-- it back: 'paused', 'concurrency', 'rate', 'group_concurrency' or 'group_rate' ('' = none;
-- 'scan' = the claim stopped after reading its budget of entries: claim again at once).
local count, worker, ttl, claim_id, retention =
  arg_number(2), ARGV[3], arg_number(4), ARGV[5], arg_number(6)
if not string.match(claim_id, '^%x+$') then fail('ERR the claim id must be hex') end
count = math.max(1, math.min(count, MAX_BATCH))

-- A job's record as a claim reads it (nil when its key is no hash); a resend also reads
-- which claim and worker hold the job, and when its attempt started.
-- Its fields are the positions of the HMGET below (F_*), plus `id` and `group`: the
-- reply itself is the job (no table built and filled per job).
-- The fields a job that never ran can have come first: a job of an `n` entry (on the
-- stream since its enqueue) is read with those alone (each field named costs the
-- claim whether the record has it or not); the rest are then nil, as absent.
local F_ST, F_SID, F_MAX, F_TYPE, F_INPUT, F_TIMEOUT, F_BACKOFF, F_CREATED, F_WATCHED,
  F_EP, F_ATT, F_PHASE, F_CP, F_RUN_AT = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14
local F_START_BY, F_OWNER = 15, 18             -- a claim's (sb: only while `deadlines`
                                               -- exists; the owner: of an expired job)
local F_NONCE, F_HOLDER, F_STARTED = 15, 16, 17 -- a resend's
-- Whether any job of the queue has a start deadline (set below, before any job is read).
local deadlines_in_use = false
local function read_claimable(id, resend, fresh)
  local job
  local key = job_key(id)
  if fresh then
    job = read_job(key, 'st', 'sid', 'max', 'type', 'in', 'to', 'bo', 'ct', 'w')
  elseif resend then
    job = read_job(key, 'st', 'sid', 'max', 'type', 'in', 'to', 'bo', 'ct', 'w', 'ep', 'att', 'ph',
      'cp', 'ra', 'tk', 'wk', 'stt')
  elseif deadlines_in_use then
    job = read_job(key, 'st', 'sid', 'max', 'type', 'in', 'to', 'bo', 'ct', 'w', 'ep', 'att', 'ph',
      'cp', 'ra', 'sb')
  else
    job = read_job(key, 'st', 'sid', 'max', 'type', 'in', 'to', 'bo', 'ct', 'w', 'ep', 'att', 'ph',
      'cp', 'ra')
  end
  if not job then return nil end
  job.id, job.group, job.key = id, false, key
  return job
end

-- The progress a claim clears, and nothing (constants: no table made per job).
local CLEAR_PROGRESS, NOTHING = {'pg', '0'}, {}

-- Appends a job's row to the reply `out`. `attempts`: this claim's count (the record's,
-- when nil).
local function add_row(out, job, epoch, attempts)
  local n = #out
  local max, timeout, backoff, phase, cp, run_at =
    job[F_MAX], job[F_TIMEOUT], job[F_BACKOFF], job[F_PHASE], job[F_CP], job[F_RUN_AT]
  attempts = attempts or tonumber(job[F_ATT]) or tonumber(epoch) or 0
  -- (A waiting job's type is one word; a record's may hold a space only when a raw
  -- caller wrote it, and then it would end the type early in the one string.)
  if not (max or timeout or backoff or phase or cp or run_at)
    and (job.raw or not string.find(job[F_TYPE] or '', ' ', 1, true)) then
    out[n + 1], out[n + 2] = job.id, epoch .. ' ' .. int(attempts) .. ' '
      .. (job[F_CREATED] or '0') .. ' ' .. (job[F_TYPE] or '') .. ' ' .. (job[F_INPUT] or '')
    return
  end
  out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5], out[n + 6], out[n + 7] =
    12, job.id, epoch, attempts, job[F_TYPE] or '', job[F_INPUT] or '', job[F_CREATED] or 0
  out[n + 8], out[n + 9], out[n + 10], out[n + 11], out[n + 12], out[n + 13] =
    max or '', timeout or '', backoff or '', phase or '', cp or '', run_at or ''
end

local record_key = PREFIX .. 'claim:' .. worker
local record = redis.call('GET', record_key) -- a wrong type fails here, before any write
local now = now_ms()
if record and string.sub(record, 1, #claim_id + 1) == claim_id .. ':' then
  -- A resend: answer the jobs of that claim still leased to it.
  local out = {now, now + ttl, -1, ''}
  for id in string.gmatch(string.sub(record, #claim_id + 2), '[^,]+') do
    local job = read_claimable(id, true)
    if job and job[F_ST] == 'processing' and job[F_NONCE] == claim_id and job[F_HOLDER] == worker then
      out[1] = tonumber(job[F_STARTED]) or now
      out[2] = tonumber(redis.call('ZSCORE', K_LEASES, id)) or out[2]
      add_row(out, job, job[F_EP])
    end
  end
  return out
end

-- How long a worker waits before claiming again from a paused queue or a queue
-- at a concurrency limit (a finishing job does not wake it).
local POLL_MS = 100
-- The most ring members and entries one claim looks at.
local RING_SCAN, ENTRY_BUDGET = 1000, count * 4 + 100
local deadline = now + ttl
local settings = redis.call('HMGET', K_SETTINGS, 'paused', 'conc', 'rate', 'gconc', 'grate', 'ptypes')
local paused, conc, rate, gconc, grate =
  settings[1] == '1', tonumber(settings[2]), tonumber(settings[3]), tonumber(settings[4]), tonumber(settings[5])
if paused then return {now, deadline, POLL_MS, 'paused'} end
local paused_types = {}
for t in string.gmatch(settings[6] or '', '[^,]+') do paused_types[t] = true end

-- The queue's limits: how many may start now.
local want, wait, reason = count, -1, ''
local function limit_wait(ms, why)
  if wait < 0 or ms < wait then wait = ms end
  if reason == '' then reason = why end
end
if conc then
  local running = redis.call('ZCOUNT', K_LEASES, '(' .. now, '+inf')
  want = math.min(want, conc - running)
  if want <= 0 then limit_wait(POLL_MS, 'concurrency') end
end
-- Starts logged in the last second: (now - 1000, now].
local function window_wait(key, limit, why)
  local n = redis.call('ZCOUNT', key, '(' .. (now - 1000), '+inf')
  if n < limit then return limit - n end
  local oldest = redis.call('ZRANGEBYSCORE', key, '(' .. (now - 1000), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  limit_wait(math.max(1, (tonumber(oldest[2]) or now) + 1000 - now), why)
  return 0
end
if rate and want > 0 then want = math.min(want, window_wait(K_STARTS, rate, 'rate')) end
if want <= 0 then return {now, deadline, wait, reason} end

-- Phase 1: choose the jobs (reads only).
deadlines_in_use = redis.call('EXISTS', K_DEADLINES) == 1
local taken, held, expired = {}, {}, {}
local budget = ENTRY_BUDGET
-- A ready entry's job, if it may start: nil for a stale entry, a job held (its type is
-- paused) or expired (its start deadline passed), which are set aside for phase 2.
-- `unindexed`: its entry is an `n` entry (enqueued straight onto the stream, not yet in
-- `jobs`): whatever becomes of it here, it leaves the stream and enters `jobs`.
local function startable(id, expected_sid, unindexed)
  local job = id and read_claimable(id, false, unindexed)
  if not job or job[F_ST] ~= 'pending' or job[F_SID] ~= expected_sid then return nil end
  job.unindexed = unindexed
  if paused_types[job[F_TYPE]] then
    held[#held + 1] = job
    return nil
  end
  -- Only a job that never started expires (a start takes it out of `deadlines`; a
  -- snoozed or retried job keeps its `sb` for the record).
  local start_by = tonumber(job[F_START_BY])
  if start_by and start_by < now and redis.call('ZSCORE', K_DEADLINES, job.id) then
    job[F_OWNER] = redis.call('HGET', job.key, 'owner')
    expired[#expired + 1] = job
    return nil
  end
  return job
end

-- The job of a `w` entry (common.lua): read from `waiting` (one value), or, given its
-- record by a script since (unwait), as the job of an `n` entry. It has no record yet:
-- a table in the record's layout stands for it (F_* positions), its `raw` id marks it.
-- A layout 5 value is not matched to the entry (unpacking and spelling out its entry
-- id would cost ~4k instructions a job): a field's other `w` entry can only be a stale
-- one, left when the job was cancelled, deleted and enqueued again under its id, and
-- either entry leases the same job with the creation time of its value. The first one
-- read does; the other is passed over (by a later claim, the job having left
-- `waiting`; by this one, as `chosen`, since the job leaves `waiting` in phase 2).
local chosen = {}
local function waiting_startable(raw, expected_sid)
  if #raw ~= 16 or chosen[raw] then return nil end
  local v = redis.call('HGET', K_WAITING, raw)
  if not v then return startable(full_id(raw), expected_sid, true) end
  local job_type, input, created
  if is_packed(v) then
    local ms, packed_type, packed_input = unpack_waiting(v)
    if not ms then return nil end
    job_type, input, created = packed_type, packed_input, int(ms)
  else
    local sid
    sid, job_type, input, created = parse_waiting(v)
    if sid ~= expected_sid then return nil end
  end
  chosen[raw] = true
  local id = full_id(raw)
  local job = {'pending', expected_sid, nil, job_type, input, nil, nil, created,
    id = id, group = false, unindexed = true, raw = raw, key = job_key(id)}
  if paused_types[job_type] then
    held[#held + 1] = job
    return nil
  end
  return job
end

-- The stream, as level 5's member '' (entries read in chunks from its head).
local stream = {entries = {}, pos = 0, last = nil, done = false}
local function stream_next()
  while budget > 0 do
    if stream.pos >= #stream.entries then
      if stream.done then return nil end
      -- (A missing stream reads as empty; one that is no stream fails here, before any
      -- write: the claim writes the stream only after reading it.)
      local from = stream.last_read and '(' .. stream.last_read or '-'
      local chunk = math.min(budget, math.max(want - #taken, 1))
      stream.entries, stream.pos = redis.call('XRANGE', K_STREAM, from, '+', 'COUNT', chunk), 0
      if #stream.entries == 0 then stream.done = true return nil end
      stream.last_read = stream.entries[#stream.entries][1]
      if #stream.entries < chunk then stream.done = true end
    end
    stream.pos = stream.pos + 1
    budget = budget - 1
    local entry = stream.entries[stream.pos]
    stream.last = entry[1]
    local fields = entry[2]
    local kind = fields[1]
    local job
    if kind == 'w' then
      job = waiting_startable(fields[2], entry[1])
    else
      job = startable((kind == 'n' or kind == 'j') and fields[2] or nil, entry[1], kind == 'n')
    end
    if job then return job end
  end
  return nil
end

-- One list member of a ring: entries read in chunks from its head.
local lists = {}
local function list_next(p, g)
  local key = ready_list(p, g)
  local l = lists[key]
  if not l then
    l = {key = key, entries = {}, pos = 0, consumed = 0, done = false}
    lists[key] = l
  end
  while budget > 0 do
    if l.pos >= #l.entries then
      if l.done then return nil end
      local chunk = math.min(budget, math.max(want - #taken, 1))
      l.entries = redis.call('LRANGE', key, l.consumed, l.consumed + chunk - 1)
      l.pos = 0
      if #l.entries < chunk then l.done = true end
      if #l.entries == 0 then return nil end
    end
    l.pos, l.consumed = l.pos + 1, l.consumed + 1
    budget = budget - 1
    local job = startable(l.entries[l.pos], 'L')
    if job then return job end
  end
  return nil
end

-- A group's room: how many of its jobs may start now (its concurrency and rate).
local room = {}
local function group_room(g)
  if g == '' or not (gconc or grate) then return math.huge end
  if room[g] then return room[g] end
  local n = math.huge
  if gconc then
    -- The group's lease set keeps lapsed leases until they are reaped: its live ones
    -- are counted against `leases`, a chunk at a time, until the limit is reached.
    local leases_key = group_leases(g)
    local running = 0
    for first = 0, redis.call('ZCARD', leases_key) - 1, CHUNK do
      local ids = redis.call('ZRANGE', leases_key, first, first + CHUNK - 1)
      if #ids == 0 then break end
      for _, score in ipairs(redis.call('ZMSCORE', K_LEASES, unpack(ids))) do
        if score and tonumber(score) > now then running = running + 1 end
      end
      if running >= gconc then break end
    end
    n = math.min(n, gconc - running)
    if n <= 0 then limit_wait(POLL_MS, 'group_concurrency') end
  end
  if grate and n > 0 then n = math.min(n, window_wait(group_starts(g), grate, 'group_rate')) end
  room[g] = math.max(n, 0)
  return room[g]
end

-- Levels in priority order; the stream belongs to level 5 even without a ring.
local levels = redis.call('ZRANGE', K_PRIOS, 0, -1)
-- No priority has a ring (the path with no flow control): the stream alone.
local stream_only = #levels == 0
local has5 = false
for _, p in ipairs(levels) do if p == '5' then has5 = true end end
if not has5 then
  local sorted = {}
  for _, p in ipairs(levels) do
    if not has5 and tonumber(p) > 5 then sorted[#sorted + 1] = '5' has5 = true end
    sorted[#sorted + 1] = p
  end
  if not has5 then sorted[#sorted + 1] = '5' end
  levels = sorted
end

local ringed = {}   -- per level: whether it has a ring (the stream alone has none)
local served = {}   -- per level: members in the order they were last served
local emptied = {}  -- per level: members found with nothing left
if stream_only then
  -- No priority has a ring: the stream alone, in order.
  while #taken < want do
    local job = stream_next()
    if not job then break end
    job.group = ''
    taken[#taken + 1] = job
  end
end
for _, p in ipairs(stream_only and {} or levels) do
  if #taken >= want or budget <= 0 then break end
  local ring = ring_key(p)
  -- Members are read a page at a time (least recently served first): a claim of a
  -- few jobs reads a few groups, however many the ring has.
  local page = math.min(RING_SCAN, want - #taken + 16)
  local first = 0
  local members = stream_only and {} or redis.call('ZRANGE', ring, 0, page - 1)
  ringed[p] = #members > 0
  local more = #members == page
  served[p], emptied[p] = {}, {}
  -- The stream is level 5's member '': in the ring (where it takes its turn), or, with
  -- no ring or not in it (it held only a wake-up entry), looked at after the groups.
  if p == '5' and (stream_only or not redis.call('ZSCORE', ring, '')) then
    members[#members + 1] = ''
  end
  while true do
    local active = {}
    for _, m in ipairs(members) do
      if group_room(m) > 0 then
        active[#active + 1] = m
      else
        -- A group at its limit goes to the back of the ring: the groups behind it
        -- must not wait for it, nor every claim read past it.
        served[p][#served[p] + 1] = m
      end
    end
    -- Round-robin: one job from each member in turn; a member left alone (the stream,
    -- on a queue with no flow control) gives the rest of the batch in one run.
    local function next_of(m)
      if m == '' and p == '5' then return stream_next() end
      return list_next(p, m)
    end
    -- Takes the next job of `m`; false when it has none (then it is marked emptied).
    local function take(m)
      local job = next_of(m)
      if not job then
        if budget > 0 then emptied[p][m] = true end
        return false
      end
      job.group = m
      taken[#taken + 1] = job
      served[p][#served[p] + 1] = m
      if m ~= '' and room[m] then room[m] = room[m] - 1 end
      return true
    end
    while #taken < want and #active > 1 and budget > 0 do
      local still = {}
      for _, m in ipairs(active) do
        if #taken >= want then still[#still + 1] = m
        elseif take(m) and group_room(m) > 0 then still[#still + 1] = m end
      end
      active = still
    end
    if #active == 1 then
      local m = active[1]
      while #taken < want and budget > 0 and take(m) and group_room(m) > 0 do end
    end
    first = first + page
    if #taken >= want or budget <= 0 or not more or first >= RING_SCAN then break end
    members = redis.call('ZRANGE', ring, first, first + page - 1)
    more = #members == page
    if #members == 0 then break end
  end
end

-- A waiting job's record is written below without having been read: its key must be
-- free (the enqueue found it so, and only a hand-made key could take it since). One
-- EXISTS for all of them; only when it counts some is each asked, and a job whose key
-- is taken is passed over (left in `waiting` for the consistency check to report)
-- rather than fail the claim half-way.
local function drop_recorded(list)
  local keys_of = {}
  for _, job in ipairs(list) do
    if job.raw then keys_of[#keys_of + 1] = job.key end
  end
  if #keys_of == 0 or redis.call('EXISTS', unpack(keys_of)) == 0 then return list end
  local kept = {}
  for _, job in ipairs(list) do
    if not job.raw or redis.call('EXISTS', job.key) == 0 then kept[#kept + 1] = job end
  end
  return kept
end
taken, held = drop_recorded(taken), drop_recorded(held)

-- Out of budget with work maybe left unread (stale or held entries): come back at once
-- rather than wait for a new entry.
if budget <= 0 and #taken < want then limit_wait(0, 'scan') end

-- The keys phase 2 writes that the reads above have not type-checked.
-- (An expired job is finished: its lease entry is removed too.)
if #taken > 0 or #expired > 0 then writable(K_LEASES) end
if next(lists) or #held > 0 or #expired > 0 then writable(K_COUNTS) end
-- Jobs that leave the stream for the first time enter `jobs` (by their creation time).
for _, list in ipairs({taken, held, expired}) do
  for _, job in ipairs(list) do
    if job.unindexed then push(created, job[F_CREATED] or '0', job.id) end
  end
end
if #created > 0 then writable(K_JOBS) end
if #expired > 0 then
  writable(K_DONE, K_DEAD, K_COUNTS, K_ACTIVE)
  check_type(K_DEADLINES, 'zset')
  local owners = {}
  for _, job in ipairs(expired) do if job[F_OWNER] then owners[job[F_OWNER]] = true end end
  countable(owners)
end
for _, job in ipairs(held) do check_type(held_list(job[F_TYPE]), 'list') end
if #held > 0 then check_type(K_HELD_TYPES, 'set') end
for _, job in ipairs(taken) do
  if job.group ~= '' then check_type(group_leases(job.group), 'zset') end
  if job[F_START_BY] then check_type(K_DEADLINES, 'zset') end
end

-- Phase 2: writes. The first is a denyoom SET: out of memory, the claim is refused whole.
local ids = {}
for _, job in ipairs(taken) do ids[#ids + 1] = job.id end
if #taken > 0 then
  redis.call('SET', record_key, claim_id .. ':' .. table.concat(ids, ','), 'PX', ttl)
end
-- The stream: what was consumed is trimmed (its head is the cursor).
if stream.last then
  local last_ms, last_seq = string.match(stream.last, '^(%d+)-(%d+)$')
  redis.call('XTRIM', K_STREAM, 'MINID', string.format('%s-%d', last_ms, tonumber(last_seq) + 1))
end
-- The lists: consumed entries leave their heads. `queued` counts the pending jobs in
-- lists and held: the listed jobs started or expired here leave it, the stream's
-- jobs held here join it (a stale entry was never counted).
local queued = 0
for _, job in ipairs(taken) do if job[F_SID] == 'L' then queued = queued - 1 end end
for _, job in ipairs(expired) do if job[F_SID] == 'L' then queued = queued - 1 end end
for _, job in ipairs(held) do if job[F_SID] ~= 'L' then queued = queued + 1 end end
if queued ~= 0 then redis.call('HINCRBY', K_COUNTS, 'queued', queued) end
for key, l in pairs(lists) do
  if l.consumed > 0 then redis.call('LTRIM', key, l.consumed, -1) end
end
-- The rings: a served member goes to the back, in the order of its last service (a
-- score past the ring's last); an emptied one leaves.
for p, order in pairs(served) do
  if ringed[p] then
    local ring = ring_key(p)
    local base = (tonumber(redis.call('ZRANGE', ring, -1, -1, 'WITHSCORES')[2]) or 0) + 1
    local last_turn = {}
    for i, m in ipairs(order) do last_turn[m] = i end
    local moves = {}
    for m, i in pairs(last_turn) do
      if not emptied[p][m] then push(moves, base + i, m) end
    end
    call_chunked('ZADD', ring, nil, moves)
    for m in pairs(emptied[p]) do
      if m == '' or redis.call('LLEN', ready_list(p, m)) == 0 then redis.call('ZREM', ring, m) end
    end
    if redis.call('EXISTS', ring) == 0 then redis.call('ZREM', K_PRIOS, p) end
  end
end
-- Held jobs wait in their type's list until it is resumed (a waiting job with the
-- record it now needs).
local unwaited = {}
for _, job in ipairs(held) do
  redis.call('SADD', K_HELD_TYPES, job[F_TYPE])
  redis.call('RPUSH', held_list(job[F_TYPE]), job.id)
  if job.raw then
    write_pending_record(job.id, 'H', job[F_CREATED], job[F_TYPE], job[F_INPUT])
    unwaited[#unwaited + 1] = job.raw
  else
    redis.call('HSET', job.key, 'sid', 'H')
  end
end
for _, job in ipairs(expired) do
  expire_unstarted(job.key, job.id, now, retention, job[F_WATCHED], job[F_OWNER])
  redis.call('ZREM', K_DEADLINES, job.id)
end

local out = {now, deadline, wait, reason}
local starts, group_logs = {}, {}
for _, job in ipairs(taken) do
  local id, g = job.id, job.group
  local epoch = int((tonumber(job[F_EP]) or 0) + 1)
  -- (Absent, `att` is `ep` (layout 5): written only where it was, so it goes on
  -- equal to the epoch until a script sets it apart.)
  local attempts = (tonumber(job[F_ATT]) or tonumber(job[F_EP]) or 0) + 1
  -- A job of an `n` entry never ran: no progress to clear (absent is 0). Its start
  -- `stt` is its update time too (readers take the latest of `ut`, `stt` and `ft`).
  if job.raw then
    -- Its record, written now: what it waited with and its lease.
    redis.call('HSET', job.key, 'st', 'processing', 'ep', epoch, 'tk', claim_id,
      'wk', worker, 'stt', int(now), 'ct', job[F_CREATED], 'type', job[F_TYPE],
      'in', job[F_INPUT])
    unwaited[#unwaited + 1] = job.raw
  elseif job[F_ATT] then
    redis.call('HSET', job.key, 'st', 'processing', 'ep', epoch, 'tk', claim_id,
      'att', int(attempts), 'wk', worker, 'stt', int(now),
      unpack(job.unindexed and NOTHING or CLEAR_PROGRESS))
  else
    redis.call('HSET', job.key, 'st', 'processing', 'ep', epoch, 'tk', claim_id,
      'wk', worker, 'stt', int(now), unpack(job.unindexed and NOTHING or CLEAR_PROGRESS))
  end
  push(leased, int(deadline), id)
  if job[F_START_BY] then redis.call('ZREM', K_DEADLINES, id) end
  if g ~= '' then
    redis.call('ZADD', group_leases(g), int(deadline), id)
    if grate then push_for(group_logs, g, int(now), id .. ':' .. epoch) end
  end
  if rate then push(starts, int(now), id .. ':' .. epoch) end
  notify(id, job[F_WATCHED])
  add_row(out, job, epoch, attempts)
end
call_chunked('HDEL', K_WAITING, nil, unwaited)
if rate then
  redis.call('ZREMRANGEBYSCORE', K_STARTS, '-inf', now - 1000)
  call_chunked('ZADD', K_STARTS, nil, starts)
  redis.call('PEXPIRE', K_STARTS, 1000)
end
for g, log in pairs(group_logs) do
  redis.call('ZREMRANGEBYSCORE', group_starts(g), '-inf', now - 1000)
  call_chunked('ZADD', group_starts(g), nil, log)
  -- A group that stops starting jobs leaves no key behind once its window has passed.
  redis.call('PEXPIRE', group_starts(g), 1000)
end
flush()
return out
