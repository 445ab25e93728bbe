-- Enqueue jobs (one, or a batch of one queue).
-- ARGV: prefix, horizon ms (0 = none), pending quota per owner (0 = none), then per job:
--       id (its UUID's 16 bytes, or its 36-character text), options ('' = all defaults, else a msgpack array: run_at ms (0 = none), delay
--       ms, idempotency key ('' = none), owner ('' = none), start_by ms (0 = none), start
--       within ms (0 = none), priority ('' = 5), group ('' = none), external lease ms
--       (0 = a job workers run; may be left out), quota weight (how many unfinished jobs
--       it counts as: a batch counts its jobs too; 1 if left out)), n, then n field/value arguments of
--       the record's static fields. (Every argument costs Redis more than its bytes: a
--       job with no options sends one instead of eight.)
-- A job with no option and no field but `type` and `in` that goes straight onto the
-- stream waits in `waiting` with no record (common.lua, layout 4).
-- Ready jobs go where flow.lua's make_ready puts them (the stream, unless they have a
-- priority other than 5 or a group); a start deadline enters `deadlines`. An external
-- task (tasks.lua) goes nowhere a worker looks: its lease enters `ext`.
-- Returns four values per job, flat (a row of its own per job would cost Redis a nested
-- reply each): 'CREATED', id, created ms, due ms when enqueued; 'DUPLICATE', existing id,
-- 0, 0 when the owner's idempotency key was seen (within the batch too); or 'EXISTS', id,
-- 0, 0 when the id exists already (a resend after a lost reply); then 'NEW_QUEUE', '', 0,
-- 0 when the queue had no `used` mark (new, or forgotten by the registry): the caller
-- registers it.
-- Refuses the whole batch, writing nothing, with the four values 'QUOTA', owner,
-- not-final jobs, quota when it would take an owner past the quota, or 'HORIZON', id,
-- due ms, horizon ms when a job is due too late.
local now = now_ms()
local horizon, quota = arg_number(2), arg_number(3)
local K_USED = PREFIX .. 'used'

local function option_number(v, id)
  if not finite(v) then fail('ERR job ' .. id .. ' has malformed options') end
  return v
end
local function option_text(v, id)
  if type(v) ~= 'string' then fail('ERR job ' .. id .. ' has malformed options') end
  return v
end

-- Reads and checks first: nothing is written unless the whole batch is accepted.
-- A job's count of field arguments, read without a conversion for the common counts.
local FIELD_COUNTS = {['0'] = 0, ['2'] = 2, ['4'] = 4, ['6'] = 6, ['8'] = 8}
-- A job's positions (see its constructor below).
local J_ID, J_KEY, J_IDEM, J_OWNER, J_FIRST, J_LAST, J_PRI, J_GRP, J_EXT, J_START_BY, J_IDEM_KEY,
  J_DUE, J_AT, J_RAW, J_WAITS, J_FOUND, J_WEIGHT = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17
local parsed, keys_of, raws, raw_jobs = {}, {}, {}, {}
local i = 4
while i <= #ARGV do
  local id, options, n = ARGV[i], ARGV[i + 1], FIELD_COUNTS[ARGV[i + 2]] or arg_number(i + 2)
  local raw
  if #id == 16 then raw, id = id, full_id(id) else raw = raw_id(id) end
  -- (A raw caller's id may be any text, but not the member that pins `leases`.)
  if id == LEASES_PIN then fail('ERR the job id ' .. id .. ' is reserved') end
  local run_at, delay, idem, owner, start_by, start_within, pri, grp, ext, weight = 0, 0, '', '', 0, 0, '', '', 0, 1
  if options ~= '' then
    local ok, o = pcall(cmsgpack.unpack, options)
    if not ok or type(o) ~= 'table' then fail('ERR job ' .. id .. ' has malformed options') end
    run_at, delay, start_by, start_within =
      option_number(o[1], id), option_number(o[2], id), option_number(o[5], id), option_number(o[6], id)
    idem, owner, pri, grp = option_text(o[3], id), option_text(o[4], id), option_text(o[7], id),
      option_text(o[8], id)
    if o[9] ~= nil then ext = option_number(o[9], id) end
    if o[10] ~= nil then
      weight = option_number(o[10], id)
      if weight < 1 or weight % 1 ~= 0 then fail('ERR job ' .. id .. ' has malformed options') end
    end
  end
  if pri ~= '' and not string.match(pri, '^[0-9]$') then fail('ERR priority must be 0-9') end
  -- (An array, every position set in its constructor: named fields would cost a hash
  -- insert each, and an enqueue makes one per job.)
  -- (nil positions are absent values, as the fields of a table would be.)
  local job = {id, job_key(id), idem, owner, i + 3, i + 2 + n, pri ~= '' and pri or nil,
    grp ~= '' and grp or nil, ext > 0 and ext or nil, nil, nil, nil, nil, raw,
    -- (Waits: a plain job whose type the waiting value can carry: one word.)
    raw and options == '' and n == 4 and ARGV[i + 3] == 'type' and ARGV[i + 5] == 'in'
      and ARGV[i + 4] ~= '' and not string.find(ARGV[i + 4], '%s'),
    false, weight}
  if start_within > 0 then start_by = now + start_within end
  job[J_START_BY] = start_by > 0 and start_by or nil
  job[J_DUE] = math.max(run_at, now + delay)
  if n < 0 or n % 2 ~= 0 or job[J_LAST] > #ARGV then fail('ERR job ' .. id .. ' has a malformed field list') end
  i = job[J_LAST] + 1
  job[J_IDEM_KEY] = idem ~= '' and idem_key(owner, idem) or nil
  parsed[#parsed + 1] = job
  keys_of[#keys_of + 1] = job[J_KEY]
  if raw then raws[#raws + 1], raw_jobs[#raw_jobs + 1] = raw, job end
end

-- Whether any job of the batch is written already (a resend after a lost reply): one
-- EXISTS of every record key answers for the whole batch (a command per job
-- otherwise); only when it counts some does each job ask again.
-- A waiting job has no record: `waiting` is asked for every id at once too (its HMGET
-- is the type check of `waiting` as well).
local any_written = false
for first = 1, #keys_of, CHUNK do
  if redis.call('EXISTS', unpack(keys_of, first, math.min(first + CHUNK - 1, #keys_of))) > 0 then
    any_written = true
    break
  end
end
for first = 1, #raws, CHUNK do
  local last = math.min(first + CHUNK - 1, #raws)
  for k, v in ipairs(redis.call('HMGET', K_WAITING, unpack(raws, first, last))) do
    if v then raw_jobs[first + k - 1][J_FOUND] = true end
  end
end

-- (`adding`: the jobs each owner gains; `needed`: what the quota checks, a batch
-- counting the jobs it carries, which its worker adds to `active` when it spawns them.)
local jobs, out, seen, adding, needed, taken, waiting = {}, {}, {}, {}, {}, {}, {}
local packed_ms = {} -- the ms of this call's entries, packed (waiting_value)
-- Appends a job's four values to the reply.
local function answer(word, id, a, b)
  local n = #out
  out[n + 1], out[n + 2], out[n + 3], out[n + 4] = word, id, a, b
end
for _, job in ipairs(parsed) do
  local id = job[J_ID]
  local existing = job[J_IDEM_KEY] and (seen[job[J_IDEM_KEY]] or redis.call('GET', job[J_IDEM_KEY]))
  if existing then
    answer('DUPLICATE', existing, 0, 0)
  elseif taken[id] or job[J_FOUND] or (any_written and redis.call('EXISTS', job[J_KEY]) == 1) then
    -- (An id twice in one batch is written once: the second finds the first.)
    answer('EXISTS', id, 0, 0)
  else
    taken[id] = true
    routable(job[J_PRI], job[J_GRP])
    if horizon > 0 and job[J_DUE] > now + horizon then return {'HORIZON', id, job[J_DUE], horizon} end
    if job[J_IDEM_KEY] then seen[job[J_IDEM_KEY]] = id end
    local owner = job[J_OWNER]
    if owner ~= '' then
      adding[owner] = (adding[owner] or 0) + 1
      needed[owner] = (needed[owner] or 0) + job[J_WEIGHT]
    end
    jobs[#jobs + 1] = job
    job[J_AT] = #out + 1
    answer('CREATED', id, now, job[J_DUE])
  end
end
if quota > 0 then
  for owner, n in pairs(needed) do
    local unfinished = tonumber(redis.call('HGET', K_ACTIVE, owner) or '0')
    if unfinished + n > quota then return {'QUOTA', owner, unfinished, quota} end
  end
end
local used = redis.call('GET', K_USED)
local fresh = not used
-- The keys this batch writes must hold what Tether keeps there (checked only for the
-- keys it writes: a single enqueue is the most frequent call there is).
local ready_now, later = fresh, false
local external = false
for _, job in ipairs(jobs) do
  if job[J_EXT] then external = true
  elseif job[J_DUE] > now then later = true else ready_now = true end
end
writable(K_JOBS)
if ready_now then writable(K_STREAM) end
if later then writable(K_DELAYED) end
if external then check_type(ext_key(), 'zset') end
if next(adding) then writable(K_ACTIVE) end
countable(adding)
owner_indexes_writable(adding)
for _, job in ipairs(jobs) do
  if job[J_START_BY] then check_type(K_DEADLINES, 'zset') break end
end

-- Writes.
-- Every job written is an arrival of the queue, whichever front end sent it (workers
-- export the count as tether_queue_enqueued_total). The first write: a counts key that
-- is no hash or a count that is no integer fails it with nothing written.
if #jobs > 0 then redis.call('HINCRBY', K_COUNTS, 'enqueued', #jobs) end
if fresh then
  -- The registry forgot this queue and deleted its stream: a group again, for the workers
  -- (BUSYGROUP when it exists: pcall keeps that from failing the script).
  redis.pcall('XGROUP', 'CREATE', K_STREAM, GROUP, '0', 'MKSTREAM')
end
-- The time of the last enqueue, to the second (the registry forgets queues idle for hours).
if fresh or now - (tonumber(used) or 0) >= 1000 then redis.call('SET', K_USED, int(now)) end
-- The stream directly (the path with no flow control) unless level 5 has a ring or a job
-- of this batch goes to a list (then make_ready places every ready job).
local direct = not has_ring5()
for _, job in ipairs(jobs) do
  if not job[J_EXT] and not on_stream(job[J_PRI], job[J_GRP]) then direct = false end
end
for _, job in ipairs(jobs) do
  local id, key = job[J_ID], job[J_KEY]
  -- Where it waits: delayed, the stream, or placed by make_ready once the record exists
  -- (then `ct` again fills the pair: the record has no `ut` until its first change, as
  -- `ut` defaults to `ct`).
  local where, at = 'ct', int(now)
  local placed_later = false
  -- A job that goes straight onto the stream is not indexed in `jobs` until it leaves
  -- the stream (claim, cancel): its entry `n=<id>` implies it, and the entry id's
  -- milliseconds are its creation time, so listing reads the stream in creation order.
  local created_at, unindexed = int(now), false
  if job[J_EXT] then
    -- Driven by its creator: its lease runs from now (no report in time: Timedout).
    where, at = 'ld', int(now + job[J_EXT])
    redis.call('ZADD', ext_key(), at, id)
  elseif job[J_DUE] > now then
    push(delayed, int(job[J_DUE]), id)
    where, at = 'ra', int(job[J_DUE])
  elseif direct and not job[J_START_BY] and job[J_WAITS] then
    local sid = redis.call('XADD', K_STREAM, '*', 'w', job[J_RAW])
    -- (Its creation time answered as the text it is: the caller reads an integer.)
    local created_ms, seq = string.match(sid, '^(%d+)%-(%d+)$')
    out[job[J_AT] + 2], out[job[J_AT] + 3] = created_ms, created_ms
    local job_type, input = ARGV[job[J_FIRST] + 1], ARGV[job[J_FIRST] + 3]
    push(waiting, job[J_RAW], waiting_value(created_ms, seq, job_type, input, packed_ms)
      or sid .. ' ' .. job_type .. ' ' .. input)
    where = nil
  elseif direct and not job[J_START_BY] then
    where, at = 'sid', redis.call('XADD', K_STREAM, '*', 'n', id)
    unindexed, created_at = true, string.match(at, '^%d+')
    out[job[J_AT] + 2], out[job[J_AT] + 3] = created_at, created_at
  elseif direct then
    where, at = 'sid', redis.call('XADD', K_STREAM, '*', 'j', id)
  else
    placed_later = true
  end
  if not where then
    -- Waiting (written below, with the batch's others): no record, no index entry.
  elseif job[J_IDEM] ~= '' then
    redis.call('SET', job[J_IDEM_KEY], id)
    redis.call('HSET', key, 'st', 'pending', 'ct', created_at, where, at, 'ik', job[J_IDEM], unpack(ARGV, job[J_FIRST], job[J_LAST]))
  else
    redis.call('HSET', key, 'st', 'pending', 'ct', created_at, where, at, unpack(ARGV, job[J_FIRST], job[J_LAST]))
  end
  if job[J_EXT] then redis.call('HSET', key, 'ext', int(job[J_EXT])) end
  if placed_later then make_ready(key, id, now, job[J_PRI], job[J_GRP]) end
  if job[J_START_BY] then
    redis.call('HSET', key, 'sb', int(job[J_START_BY]))
    redis.call('ZADD', K_DEADLINES, int(job[J_START_BY]), id)
  end
  if where and not unindexed then push(created, created_at, id) end
  if job[J_OWNER] ~= '' then push_for(owned, job[J_OWNER], created_at, id) end
end
for owner, n in pairs(adding) do active[owner] = n end
if #waiting > 0 then
  -- (First: a listpack left by an older process converts before the jobs go in.)
  table.insert(waiting, 1, WAITING_PIN_VALUE)
  table.insert(waiting, 1, WAITING_PIN)
end
call_chunked('HSET', K_WAITING, nil, waiting)
flush()
if fresh then answer('NEW_QUEUE', '', 0, 0) end
return out
