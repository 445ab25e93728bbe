-- Prelude shared by every Tether script (prepended at build time).
--
-- Calling convention, the same for all scripts:
--   KEYS = the queue's fixed keys: stream, delayed, leases, jobs, done, dead, counts
--   ARGV[1] = the queue's key prefix "tether:{<queue>}:"; per-job keys are formed
--             from it, so they share the queue's hash tag (one cluster slot)
--   ARGV[2..] = the script's own arguments
-- Time always comes from the Redis server (TIME), never from clients.
local K_STREAM, K_DELAYED, K_LEASES, K_JOBS, K_DONE, K_DEAD, K_COUNTS =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local PREFIX = ARGV[1]
local GROUP = 'workers'

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function job_key(id) return PREFIX .. 'job:' .. id end

-- Owners do not share idempotency keys: one owner's key can neither find nor block
-- another's. The owner's length makes the split unambiguous; ownerless jobs keep `idem:`.
local function idem_key(owner, key)
  if not owner or owner == '' then return PREFIX .. 'idem:' .. key end
  return PREFIX .. 'oidem:' .. #owner .. ':' .. owner .. ':' .. key
end

-- An owner's retained jobs by creation time, so an owner's list reads only its own jobs.
local function owner_index(owner) return PREFIX .. 'owner:' .. owner end

-- Owner -> how many of its jobs are not final (the pending quota counts these).
local K_ACTIVE = PREFIX .. 'active'

-- Wake anyone watching this job (watch / SSE). Payload-free: watchers re-read the record.
-- Only jobs with a watcher (field w = 1, set by watch.lua) pay for the PUBLISH.
local function notify(id, watched)
  if watched == '1' then redis.call('PUBLISH', PREFIX .. 'ev:' .. id, '1') end
end

-- Make a job ready now: a fresh stream entry whose id the record remembers, so
-- a claim can tell a live entry from a stale one.
local function make_ready(key, id, now)
  local sid = redis.call('XADD', K_STREAM, '*', 'j', id)
  redis.call('HSET', key, 'st', 'pending', 'sid', sid, 'ut', now)
end

-- Index updates collected while a script handles its jobs and applied by flush() in
-- one call each: every redis.call costs a conversion between Lua and Redis, so a
-- batch pays for an index once, not once per job.
local unleased, done, dead, leased, created, counted = {}, {}, {}, {}, {}, {}
local settled = {} -- owner -> jobs of it that became final

local function push(list, ...)
  for _, v in ipairs({...}) do list[#list + 1] = v end
end

-- Every script that calls finalize or pushes onto these lists ends with flush().
local function flush()
  if #unleased > 0 then redis.call('ZREM', K_LEASES, unpack(unleased)) end
  if #leased > 0 then redis.call('ZADD', K_LEASES, unpack(leased)) end
  if #done > 0 then redis.call('ZADD', K_DONE, unpack(done)) end
  if #dead > 0 then redis.call('ZADD', K_DEAD, unpack(dead)) end
  if #created > 0 then redis.call('ZADD', K_JOBS, unpack(created)) end
  for status, n in pairs(counted) do redis.call('HINCRBY', K_COUNTS, status, n) end
  for owner, n in pairs(settled) do
    -- At or below 0 (jobs enqueued before owners were counted): forget the owner.
    if redis.call('HINCRBY', K_ACTIVE, owner, -n) <= 0 then redis.call('HDEL', K_ACTIVE, owner) end
  end
end

-- Record a final status. The caller has checked that the transition is allowed.
-- `fields` are extra field/value pairs (result, error...).
local function finalize(key, id, status, now, retention, watched, fields)
  local expires = now + retention
  local owner = redis.call('HGET', key, 'owner')
  if owner and owner ~= '' then settled[owner] = (settled[owner] or 0) + 1 end
  if status == 'failure' then
    push(fields, 'dead', 1)
    push(dead, now, id)
  end
  redis.call('HSET', key, 'st', status, 'pg', 100, 'ft', now, 'ut', now, 'eta', now,
    'xt', expires, 'creq', 0, unpack(fields))
  push(unleased, id)
  push(done, expires, id)
  counted[status] = (counted[status] or 0) + 1
  notify(id, watched)
end

-- Checks that `epoch` is the live lease of a processing job.
-- Returns st and the requested fields, or nil plus the refusal:
--   'ALREADY' when this very lease already recorded its outcome (a resend after a lost reply),
--   'LOST' when another claim or the reaper has taken the job since.
local function check_lease(key, epoch, ...)
  local vals = redis.call('HMGET', key, 'st', 'ep', ...)
  if vals[2] ~= epoch then return nil, 'LOST' end
  if vals[1] ~= 'processing' then return nil, 'ALREADY' end
  return vals
end

