-- The prelude of Tether's function library (every queue script is a Redis function
-- of one library, loaded once per server: see src/scripts.rs).
--
-- Calling convention, the same for all scripts:
--   KEYS = the queue's fixed keys: stream, delayed, leases, jobs, done, dead, counts
--   ARGV[1] = the queue's key prefix "tether:{<queue>}:"; per-job keys are formed
--             from it, so they share the queue's hash tag (one cluster slot)
--   ARGV[2..] = the script's own arguments
-- Time always comes from the Redis server (TIME), never from clients.
--
-- Replies, the same for all scripts (schedules/*.lua too, which have a prelude of their
-- own): what a script did is a status word from this list (a batch answers a word per
-- job, or per job a row that starts with one); counts, ids, times and records are plain
-- data. The caller (the store's reply.rs) takes any other word for an error, never for
-- one of these.
--   OK                    done as asked
--   NOT_FOUND             no such job or schedule, or not the caller's
--   INVALID:<status>      the job's status does not allow it
--   NOT_SUPPORTED         the job does not allow it (cancel of a non-cancelable job)
--   LOST                  the lease is not the caller's any more: nothing was written
--   ALREADY[:<status>]    this lease recorded its outcome before (a resend after a lost
--                         reply); <status>: the job's status now
--   CANCEL_REQUESTED      renew, progress, checkpoint: done, and a cancel was requested
--   CANCELLED, REQUESTED  cancel: ended at once (it was pending) / flagged (it runs)
--   RETRY, DEAD           finish: scheduled again / failed for good
--   NOT_REQUESTED         finish: a cancelled outcome without a cancel request
--   CREATED, EXISTS, DUPLICATE  enqueue, per job: written / written by an earlier send /
--                         an earlier job of the owner's idempotency key
--   NEW_QUEUE             enqueue: the queue had no `used` mark (the caller registers it)
--   QUOTA, HORIZON        enqueue: the batch was refused, nothing written
--   EXISTS, LIMIT, STALE  schedules: the name is taken / the owner has as many as allowed /
--                         changed since it was taken
--   IN_USE                forget: the queue holds jobs or had an enqueue lately
-- Errors are errors (`fail()`), never a word.
--
-- Redis does not roll a script back when it fails half-way: writes made before the
-- error stay. So every script has two phases. First it checks its arguments, the
-- types of the keys it will write, that the counters it will change are integers
-- (writable(), countable()), and reads every record it needs; any of these may
-- fail, and then nothing has been written. Then it writes, with nothing left that can
-- fail: no unpack of an unbounded list, no arithmetic on an unchecked value, no key
-- of an unchecked type. Out of memory, Redis 7.0 refuses a script only at its first
-- write, and only when that write is a denyoom command (once a script has written, it
-- runs to its end). Each script's first write is a denyoom one (HSET, SET, XADD, ZADD,
-- HINCRBY), so out of memory nothing starts: a claim is refused rather than leasing
-- jobs whose outcomes could not be recorded.
-- What the library's top level defines (the functions below) is made once, when the
-- library is loaded; what depends on the call (its keys and arguments, the buffers
-- below) is set by begin_common() at the start of every call. Calls never overlap.
local KEYS, ARGV
local K_STREAM, K_DELAYED, K_LEASES, K_JOBS, K_DONE, K_DEAD, K_COUNTS
local PREFIX
-- Owner -> how many of its jobs are not final (the pending quota counts these).
local K_ACTIVE
local GROUP = 'workers'
-- The most jobs one call handles (callers send larger batches in chunks), and the most
-- values passed to one command (Lua's unpack fails past about 8,000).
local MAX_BATCH = 1000
-- Layout 2 stores no field equal to its default; these are the defaults scripts apply
-- (tether_model::DEFAULT_MAX_ATTEMPTS).
local DEFAULT_MAX_ATTEMPTS = 5
-- (1,024: a batch's 1,000 values and the two of a pin (below) in one command.)
local CHUNK = 1024

-- The server's time in ms, read once per call (a call is atomic: one instant serves it
-- all, and each TIME would be a command more).
local clock
local function now_ms()
  if not clock then
    local t = redis.call('TIME')
    clock = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return clock
end

local function job_key(id) return PREFIX .. 'job:' .. id end

-- Layout 4: a job enqueued straight onto the stream with nothing but its type and
-- input (no option, no other field: the common path) has no record while it waits.
-- It is a field of the queue's `waiting` hash, named by the 16 bytes of its UUID,
-- whose value is its stream entry id in 8 bytes (layout 5: see waiting_value) then
-- `<type> <input>` (a type has no space), and its stream entry is `w=<16 bytes>`. Its
-- record is written when it leaves the stream (claimed or held), or by unwait() when a script reads or changes it by id: then it
-- is the record of layout 3 (`st ct sid type in`), its `w` entry read as an `n` one.
-- (A hash field costs Redis about a third of a record of its own, a 16-byte name
-- half of the 36-character id's allocation.)
local K_WAITING
-- `waiting` holds this field beside its jobs (its name is no 16-byte id, its value is
-- longer than hash-max-listpack-value, 64 bytes): it keeps the hash in its hashtable
-- encoding. As a listpack (up to 512 fields), every lookup of a job was a scan of the
-- hash and every field removed a copy of it. Written with each batch of waiting jobs,
-- it stays when they leave (the key then holds it alone); the consistency check passes
-- it over and `forget` deletes it.
local WAITING_PIN = ''
local WAITING_PIN_VALUE = 'a pin: keeps this hash out of its listpack encoding; it is no job, and waits for none'
-- Byte -> its two hex digits, made at the first call (the library's top level has no
-- `string`): a lookup per byte costs a fraction of a formatted `%02x`.
local HEX
-- The id (36 characters) of a UUID's 16 bytes: one string.byte, sixteen lookups and
-- one concatenation.
local function full_id(raw)
  if not HEX then
    HEX = {}
    for b = 0, 255 do HEX[b] = string.format('%02x', b) end
  end
  local b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15, b16 = string.byte(raw, 1, 16)
  return HEX[b1] .. HEX[b2] .. HEX[b3] .. HEX[b4] .. '-' .. HEX[b5] .. HEX[b6] .. '-' .. HEX[b7]
    .. HEX[b8] .. '-' .. HEX[b9] .. HEX[b10] .. '-' .. HEX[b11] .. HEX[b12] .. HEX[b13] .. HEX[b14]
    .. HEX[b15] .. HEX[b16]
end
local UUID_PATTERN = '^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$'
-- The 16 bytes of an id, or nil when it is no UUID in its lowercase text form (the
-- only form Tether writes; rare paths only: a loop of 16 conversions).
local function raw_id(id)
  if not string.match(id, UUID_PATTERN) or string.find(id, '%u') then return nil end
  return (string.gsub(string.gsub(id, '-', ''), '%x%x',
    function(h) return string.char(tonumber(h, 16)) end))
end
-- Whether `id` is waiting (a read: for the answers of scripts that refuse a pending job).
local function is_waiting(id)
  local raw = raw_id(id)
  return raw and redis.call('HEXISTS', K_WAITING, raw) == 1
end
-- Whether a stream entry (as XRANGE answers it) is `id`'s: `n=<id>`, `j=<id>`, or the
-- `w=<16 bytes>` of a job that waited and was given its record since.
local function entry_of(entry, id)
  local kind, named = entry[2][1], entry[2][2]
  if kind == 'w' then return #named == 16 and full_id(named) == id end
  return named == id
end
-- A waiting job's value (layout 5): its stream entry id `<ms>-<seq>` (given as the
-- texts of its two numbers) as 8 bytes (the ms in 6, big-endian, the sequence number
-- in 2), then `<type> <input>`; nil when the sequence number needs more than 2 bytes
-- (65,536 entries in one ms) or the ms more than 13 digits (past the year 2286, or a
-- stream given a larger id by hand: its first byte could then read as a digit, or
-- pass 6 bytes): the caller then writes layout 4's text. (Layout 4 spelled the id
-- out, 16 characters or more: a no-op job's value took a 32-byte allocation where 8
-- bytes fit it in 16.)
-- The two parts are looked up rather than converted for each job: `ms_bytes` holds
-- the ms the caller has packed (a batch's entries share a few), SEQ_BYTES every
-- sequence number under 1,000 packed so far (kept across calls, at most 1,000
-- strings: the entries of one ms count up from 0).
local SEQ_BYTES = {}
local function waiting_value(ms, seq, job_type, input, ms_bytes)
  if #ms > 13 or #seq > 4 and tonumber(seq) > 65535 then return nil end
  local head = ms_bytes[ms]
  if not head then
    head = struct.pack('>I6', ms)
    ms_bytes[ms] = head
  end
  local tail = SEQ_BYTES[seq]
  if not tail then
    tail = struct.pack('>I2', seq)
    if #seq <= 3 then SEQ_BYTES[seq] = tail end
  end
  return head .. tail .. job_type .. ' ' .. input
end
-- Whether a waiting value is packed (waiting_value). Layout 4's `<entry id> <type>
-- <input>` (and layout 5's for an id that does not pack) starts with a digit, 48 or
-- more, where a packed value starts with the top byte of a ms count under 10^13, at
-- most 9.
local function is_packed(v) return (string.byte(v) or 0) < 48 end
-- A packed waiting value's entry ms (a number), type and input; nil when malformed.
-- (Its sequence number, two bytes at 7, is read only by those that need it: the
-- claim does not.)
local function unpack_waiting(v)
  if #v < 10 then return nil end
  local job_type, input = string.match(v, '^(%S+) (.*)$', 9)
  if not job_type then return nil end
  return struct.unpack('>I6', v), job_type, input
end
-- A waiting job's stream entry id, type, input and creation time (the entry id's ms),
-- from a value of either form; nil when malformed.
local function parse_waiting(v)
  if not is_packed(v) then
    local sid, created, job_type, input = string.match(v, '^((%d+)%-%d+) (%S+) (.*)$')
    return sid, job_type, input, created
  end
  local ms, job_type, input = unpack_waiting(v)
  if not ms then return nil end
  local created = string.format('%d', ms)
  return created .. '-' .. struct.unpack('>I2', v, 7), job_type, input, created
end
-- The waiting job `id` (reads only): {raw, sid, ct, type, input}, or nil when it is
-- not waiting or has a record (a wrong-typed `waiting` fails here, before any write).
local function waiting_job(id)
  local raw = raw_id(id)
  local v = raw and redis.call('HGET', K_WAITING, raw)
  if not v then return nil end
  local sid, job_type, input, created = parse_waiting(v)
  if not sid or redis.call('EXISTS', job_key(id)) == 1 then return nil end
  return {raw = raw, sid = sid, ct = created, type = job_type, input = input}
end
-- The record of a pending job that waited in `waiting` (`sid`: where it waits now).
local function write_pending_record(id, sid, created, job_type, input)
  redis.call('HSET', job_key(id), 'st', 'pending', 'ct', created, 'sid', sid, 'type', job_type,
    'in', input)
end
-- Gives a waiting job (waiting_job's) the record of an `n` job: `st ct sid type in`.
local function write_waiting_record(id, w)
  write_pending_record(id, w.sid, w.ct, w.type, w.input)
  redis.call('HDEL', K_WAITING, w.raw)
end
-- Gives the waiting job `id` its record, before a script reads or changes it by id;
-- nothing when it has one or is not waiting. Called once the script's own type
-- checks are done: what follows it cannot fail.
local function unwait(id)
  local w = waiting_job(id)
  if w then write_waiting_record(id, w) end
end

-- Numbers passed to redis.call are formatted with "%.17g" for every call, which costs
-- more than the command itself; integers formatted once ("%d") and reused are cheap,
-- and a call's timestamps repeat for every job of a batch.
local formatted = {}
local function int(n)
  local text = formatted[n]
  if not text then
    text = string.format('%d', n)
    formatted[n] = text
  end
  return text
end

-- Owners do not share idempotency keys: one owner's key can neither find nor block
-- another's. The owner's length makes the split unambiguous; ownerless jobs keep `idem:`.
local function idem_key(owner, key)
  if not owner or owner == '' then return PREFIX .. 'idem:' .. key end
  return PREFIX .. 'oidem:' .. #owner .. ':' .. owner .. ':' .. key
end

-- An owner's retained jobs by creation time, so an owner's list reads only its own jobs.
local function owner_index(owner) return PREFIX .. 'owner:' .. owner end

local function fail(message) error({err = message}) end

-- ARGV[i] as a number; a malformed argument fails the script before any write.
local function arg_number(i)
  local n = tonumber(ARGV[i])
  if not finite(n) then fail('ERR argument ' .. i .. ' is not a number: ' .. tostring(ARGV[i])) end
  return n
end

local function bounded(n)
  if n > MAX_BATCH then fail('ERR ' .. n .. ' jobs in one call; send at most ' .. MAX_BATCH) end
end

-- What each fixed key holds (the stream, the hashes; the others are sorted sets).
local function fixed_type(key)
  if key == K_STREAM then return 'stream' end
  if key == K_COUNTS or key == K_ACTIVE or key == K_WAITING then return 'hash' end
  return 'zset'
end

-- Keys of this call already known to hold what Tether keeps there (key -> true): each
-- is checked once per call however many jobs write it, and a key that a typed read has
-- just answered (the leases' ZCOUNT) needs no TYPE of its own.
local checked = {}

-- Checks that the fixed keys a script may write hold what Tether keeps there (or
-- nothing yet), and that the counters are integers, so no later write can fail.
-- (Scripts call it for the keys a batch turns out to write: each check is a command.)
local function writable(...)
  for _, key in ipairs({...}) do
    if checked[key] then
    elseif key == K_COUNTS then
      -- The HMGET of the counts is the type check too (a key that is no hash fails it).
      local counts = redis.pcall('HMGET', key, 'success', 'failure', 'cancelled', 'queued')
      if counts.err then
        fail('WRONGTYPE ' .. key .. ' is not a hash; nothing was changed')
      end
      for _, n in ipairs(counts) do
        if not string.match(n or '0', '^%-?%d+$') then
          fail('ERR ' .. key .. ' holds a count that is not an integer; nothing was changed')
        end
      end
    else
      local t = redis.call('TYPE', key)['ok']
      if t ~= 'none' and t ~= fixed_type(key) then
        fail('WRONGTYPE ' .. key .. ' holds a ' .. t .. ', not a ' .. fixed_type(key) .. '; nothing was changed')
      end
    end
    checked[key] = true
  end
end

-- A job's fields, or nil when its key is not a hash: that is no record of Tether's,
-- and batch scripts pass over it rather than fail.
local function read_job(key, ...)
  local v = redis.pcall('HMGET', key, ...)
  if v.err then return nil end
  return v
end

-- Wake anyone watching this job (watch / SSE). Payload-free: watchers re-read the record.
-- Only jobs with a watcher (field w = 1, set by watch.lua) pay for the PUBLISH.
local function notify(id, watched)
  if watched == '1' then redis.call('PUBLISH', PREFIX .. 'ev:' .. id, '1') end
end

-- The statuses a job ends in: nothing changes a job in one of them (but retry_dead
-- for a dead failure, and expire).
local FINAL = {success = true, failure = true, cancelled = true}
local function is_final(st) return FINAL[st] == true end

-- The fields of a job that ended cancelled, beside its status and times.
local function cancelled_fields(message) return {'ec', 'RequestCanceled', 'msg', message} end

-- Checks that the owners' unfinished-job counters (`owners`: owner -> anything; '' and
-- false are no owner) are integers or absent, so their HINCRBY in flush() cannot fail.
local function countable(owners)
  local list = {}
  for owner in pairs(owners) do
    if owner and owner ~= '' then list[#list + 1] = owner end
  end
  if #list == 0 then return end
  for _, n in ipairs(redis.call('HMGET', K_ACTIVE, unpack(list))) do
    if not string.match(n or '0', '^%-?%d+$') then
      fail('ERR ' .. K_ACTIVE .. ' holds a count that is not an integer; nothing was changed')
    end
  end
end

-- Checks that the owners' indexes (`owners`: owner -> anything) are sorted sets or
-- nothing yet, so their updates in flush() cannot fail.
local function owner_indexes_writable(owners)
  for owner in pairs(owners) do
    local t = redis.call('TYPE', owner_index(owner))['ok']
    if t ~= 'none' and t ~= 'zset' then
      fail('WRONGTYPE ' .. owner_index(owner) .. ' is not a zset; nothing was changed')
    end
  end
end

-- Index updates collected while a script handles its jobs and applied by flush() in
-- one call each: every redis.call costs a conversion between Lua and Redis, so a
-- batch pays for an index once, not once per job. Every index update of every script
-- goes through these: push(list, ...) onto a list, push_for(map, owner, ...) onto an
-- owner's, then flush().
local leased, unleased, renewed = {}, {}, {} -- leases: added, removed, moved (ZADD XX)
local delayed, undelayed = {}, {}            -- delayed: (due, id) pairs added; ids removed
local done, undone = {}, {}                  -- done: (expiry, id) pairs added; ids removed
local dead, undead = {}, {}                  -- dead
local created, uncreated = {}, {}            -- jobs
local owned, disowned = {}, {}               -- owner -> its index's additions, removals
local counted = {}                           -- status -> change of its retained count
local active = {}                            -- owner -> change of its unfinished jobs

-- One value, or a pair (a score and its member): fixed parameters, as a vararg would
-- make a table per call, and these are called per job. A nil first value adds nothing.
local function push(list, a, b)
  if a == nil then return end
  local n = #list + 1
  list[n] = a
  if b ~= nil then list[n + 1] = b end
end

local function push_for(map, owner, a, b)
  local list = map[owner]
  if not list then
    list = {}
    map[owner] = list
  end
  push(list, a, b)
end

-- `cmd key [option] values...`, CHUNK values per call (CHUNK is even, so score/member
-- pairs stay whole).
local function call_chunked(cmd, key, option, list)
  for first = 1, #list, CHUNK do
    local last = math.min(first + CHUNK - 1, #list)
    if option then
      redis.call(cmd, key, option, unpack(list, first, last))
    else
      redis.call(cmd, key, unpack(list, first, last))
    end
  end
end

-- The queue's `leases` holds this member, scored -inf, beside its leases: a member
-- longer than zset-max-listpack-value (64) keeps the sorted set in its skiplist
-- encoding. In the listpack one it falls back to while it holds up to 128 members (a
-- worker's concurrency), every lease added was a walk from the head and a copy of the
-- whole list: the largest single cost of a claim. It is added with the leases, left
-- when they end (then the key holds it alone), and no job: readers count and range
-- from '(-inf' (ZCOUNT, ZRANGEBYSCORE), and the consistency check passes it over.
local LEASES_PIN = '~pin: keeps this sorted set out of its listpack encoding; it is no job~'

-- Every script that calls finalize or pushes onto these lists ends with flush().
-- The keys it writes were checked (writable(), countable(), owner_indexes_writable())
-- in the script's first phase. The counters go first: HINCRBY is denyoom, so a script
-- whose first write is here (expire) is refused whole out of memory.
local function flush()
  for status, n in pairs(counted) do redis.call('HINCRBY', K_COUNTS, status, n) end
  for owner, n in pairs(active) do
    -- Jobs ended, and at or below 0 (jobs enqueued before owners were counted): forget the owner.
    if redis.call('HINCRBY', K_ACTIVE, owner, n) <= 0 and n < 0 then redis.call('HDEL', K_ACTIVE, owner) end
  end
  call_chunked('ZREM', K_LEASES, nil, unleased)
  if #leased > 0 then
    -- (First: a listpack left by an older process converts before the leases go in.)
    table.insert(leased, 1, LEASES_PIN)
    table.insert(leased, 1, '-inf')
  end
  call_chunked('ZADD', K_LEASES, nil, leased)
  call_chunked('ZADD', K_LEASES, 'XX', renewed)
  call_chunked('ZADD', K_DELAYED, nil, delayed)
  call_chunked('ZREM', K_DELAYED, nil, undelayed)
  call_chunked('ZADD', K_DONE, nil, done)
  call_chunked('ZREM', K_DONE, nil, undone)
  call_chunked('ZADD', K_DEAD, nil, dead)
  call_chunked('ZREM', K_DEAD, nil, undead)
  call_chunked('ZADD', K_JOBS, nil, created)
  call_chunked('ZREM', K_JOBS, nil, uncreated)
  for owner, list in pairs(owned) do call_chunked('ZADD', owner_index(owner), nil, list) end
  for owner, list in pairs(disowned) do call_chunked('ZREM', owner_index(owner), nil, list) end
end

-- Record a final status. The caller has checked that the transition is allowed, and
-- countable() its owner. `fields` are extra field/value pairs (result, error...).
-- `owner` is the job's owner as the caller read it in its first phase (false: none).
-- `creq`: the job's cancel request as the caller read it, when it did (nil: unknown); a
-- request is cleared, and a job known to have none is spared the write (absent is none).
-- What a final status implies is not written (readers derive it, codec.rs): progress
-- 100, the ETA and the update time its finish time `ft` (each pair written per job
-- costs Redis more than its bytes).
local function finalize(key, id, status, now, retention, watched, fields, owner, creq)
  local expires = now + retention
  if owner and owner ~= '' then active[owner] = (active[owner] or 0) - 1 end
  if status == 'failure' then
    push(fields, 'dead', '1')
    push(dead, int(now), id)
  end
  if creq ~= false then push(fields, 'creq', '0') end
  local at = int(now)
  redis.call('HSET', key, 'st', status, 'ft', at, 'xt', int(expires), unpack(fields))
  push(unleased, id)
  push(done, int(expires), id)
  counted[status] = (counted[status] or 0) + 1
  notify(id, watched)
end

-- The lease token of a record: the claim counter `ep` and the claim's nonce `tk`
-- (`ep` alone for leases issued before tokens carried a nonce).
local function token_of(ep, tk)
  if tk then return (ep or '') .. '.' .. tk end
  return ep
end

-- Checks that `token` is the live lease of a processing job, and that the lease has not
-- lapsed. Read-only.
-- Returns nil and then the requested fields when it is; otherwise the refusal:
--   'ALREADY' when this very lease already recorded its outcome (a resend after a lost reply),
--   'LOST' when another claim or the reaper has taken the job since (or it is no record), or
--          the lease lapsed: its concurrency slot was freed then, so another job may hold
--          it now, and the reaper will take the job back.
-- Whether any lease of the queue has lapsed (nil: not asked yet). Usually none has, and
-- one ZCOUNT then stands for every job's deadline check (reading and parsing a score
-- per job cost more than the rest of a finish).
local any_lapsed
local function leases_lapsed()
  if any_lapsed == nil then
    any_lapsed = redis.call('ZCOUNT', K_LEASES, '(-inf', now_ms()) > 0
    checked[K_LEASES] = true -- (a key that is no sorted set fails the ZCOUNT)
  end
  return any_lapsed
end
-- Lease deadlines read ahead for a batch (id -> score, false when none): one ZMSCORE
-- per chunk instead of a ZSCORE per job.
local lease_deadlines = {}
local function prefetch_leases(ids)
  if not leases_lapsed() then return end
  for first = 1, #ids, CHUNK do
    local last = math.min(first + CHUNK - 1, #ids)
    local scores = redis.call('ZMSCORE', K_LEASES, unpack(ids, first, last))
    for i = first, last do lease_deadlines[ids[i]] = scores[i - first + 1] end
  end
end
-- check_lease's work on the field list `fields` (a table: no varargs copied per job).
-- Returns the refusal, or nil and the HMGET's reply: `st ep tk`, then `fields`.
local function check_lease_fields(key, token, fields)
  local v = redis.pcall('HMGET', key, 'st', 'ep', 'tk', unpack(fields))
  if v.err then return 'LOST' end
  if token_of(v[2], v[3]) ~= token then return 'LOST' end
  if v[1] ~= 'processing' then return 'ALREADY' end
  if not leases_lapsed() then return nil, v end
  local id = string.sub(key, #PREFIX + 5)
  local deadline = lease_deadlines[id]
  if deadline == nil then deadline = redis.call('ZSCORE', K_LEASES, id) end
  -- (At its deadline a lease is no longer live: the claim counts live ones as > now.)
  if not deadline or tonumber(deadline) <= now_ms() then return 'LOST' end
  return nil, v
end
local function check_lease(key, token, ...)
  local refusal, v = check_lease_fields(key, token, {...})
  if refusal then return refusal end
  return nil, unpack(v, 4, 3 + select('#', ...))
end

-- Binds a call's keys and arguments and empties what an earlier call left: a buffer
-- left with entries (the last call may have failed before its flush) is replaced, an
-- empty one kept. The checks are inline, and an array buffer's is a look at its first
-- slot: a function call and a `next` per buffer cost every call ~16k instructions.
-- The key names made from the prefix are kept while calls name the same queue (the
-- prefix is an interned string: the comparison is a pointer's).
local function begin_common(keys, args)
  KEYS, ARGV = keys, args
  K_STREAM, K_DELAYED, K_LEASES, K_JOBS, K_DONE, K_DEAD, K_COUNTS =
    keys[1], keys[2], keys[3], keys[4], keys[5], keys[6], keys[7]
  if args[1] ~= PREFIX then
    PREFIX = args[1]
    K_ACTIVE = PREFIX .. 'active'
    K_WAITING = PREFIX .. 'waiting'
  end
  if leased[1] ~= nil then leased = {} end
  if unleased[1] ~= nil then unleased = {} end
  if renewed[1] ~= nil then renewed = {} end
  if delayed[1] ~= nil then delayed = {} end
  if undelayed[1] ~= nil then undelayed = {} end
  if done[1] ~= nil then done = {} end
  if undone[1] ~= nil then undone = {} end
  if dead[1] ~= nil then dead = {} end
  if undead[1] ~= nil then undead = {} end
  if created[1] ~= nil then created = {} end
  if uncreated[1] ~= nil then uncreated = {} end
  if next(formatted) ~= nil then formatted = {} end
  if next(owned) ~= nil then owned = {} end
  if next(disowned) ~= nil then disowned = {} end
  if next(counted) ~= nil then counted = {} end
  if next(active) ~= nil then active = {} end
  if next(checked) ~= nil then checked = {} end
  if next(lease_deadlines) ~= nil then lease_deadlines = {} end
  any_lapsed = nil
  clock = nil
end
