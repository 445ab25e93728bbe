-- Flow control, shared by every script (the library's second part, after common.lua).
--
-- Where a ready job waits depends on its priority (`pri`, absent = 5) and its
-- fairness group (`grp`, absent = none):
--   priority 5, no group  -> the queue's stream (the path of a queue with no flow
--                            control: nothing here costs it more than two reads)
--   anything else         -> the list `rdy:<priority>:<group>` (group '' = none)
-- Each priority that has lists has a ring, `ring:<priority>`: a sorted set of its
-- groups scored by when each was last served, so the claim serves the least
-- recently served group first (round-robin). `prios` holds the priorities that have
-- a ring. While `ring:5` exists, the stream takes part in it as the member ''.
-- A list push adds an entry (`d`, no job) to an empty stream, so a worker blocked on
-- the stream wakes up; claims skip and trim such entries like stale ones.
-- A job's record says where its entry is: `sid` = the stream entry id, 'L' (a list)
-- or 'H' (held while its type is paused). A cancel or an expiry leaves a list entry
-- behind, stale; claims skip (and trim) an entry whose job is not pending there.
-- Counts: `counts.queued` is the number of pending jobs in lists and held lists (stale
-- entries are not counted), so the queue's ready count is the stream's jobs plus it.
-- K_HELD_TYPES: the types that have a held list (so maintenance can put back what a
-- resume left). All are set by begin_flow().
local K_SETTINGS, K_PRIOS, K_DEADLINES, K_STARTS, K_HELD_TYPES

local function ring_key(p) return PREFIX .. 'ring:' .. p end
local function ready_list(p, g) return PREFIX .. 'rdy:' .. p .. ':' .. g end
local function group_leases(g) return PREFIX .. 'gl:' .. g end
local function group_starts(g) return PREFIX .. 'gs:' .. g end
local function held_list(t) return PREFIX .. 'held:' .. t end

-- Whether a job takes the stream (the default) rather than a list.
local function on_stream(pri, grp)
  return (not pri or pri == '' or pri == '5') and (not grp or grp == '')
end

-- What make_ready learnt or left for flush() in this call (begin_flow empties them):
local joined = {}     -- ring -> members known to be in it (checked or added)
local prio_known = {} -- priorities known to be in `prios`
local listed = {}     -- ready list -> ids to append (one RPUSH per list, in flush())
local queued_delta = 0
local stream_busy     -- true once the stream is known to hold an entry

-- Adds `member` to a ring after its last member (served last), if it is not in it.
local function join_ring(ring, member)
  local members = joined[ring]
  if not members then
    members = {}
    joined[ring] = members
  end
  if members[member] then return end
  members[member] = true
  if redis.call('ZSCORE', ring, member) then return end
  local last = redis.call('ZRANGE', ring, -1, -1, 'WITHSCORES')
  redis.call('ZADD', ring, (tonumber(last[2]) or 0) + 1, member)
end

-- Make a job ready now, where its priority and group say. The caller has read the
-- job's `pri` and `grp` (nil for none) and checked the stream with writable().
-- Whether level 5 has a ring, read once per script (only make_ready creates one here).
local ring5
local function has_ring5()
  if ring5 == nil then ring5 = redis.call('EXISTS', ring_key('5')) == 1 end
  return ring5
end

-- A listed job's id reaches its list in flush() (every script that calls make_ready
-- ends with it), with its batch's: a batch of a thousand jobs of one group is one
-- RPUSH, one count and one ring check, not a thousand.
local function make_ready(key, id, now, pri, grp)
  if on_stream(pri, grp) then
    local sid = redis.call('XADD', K_STREAM, '*', 'j', id)
    stream_busy = true
    redis.call('HSET', key, 'st', 'pending', 'sid', sid, 'ut', int(now))
    if has_ring5() then join_ring(ring_key('5'), '') end
    return
  end
  local p, g = (pri and pri ~= '') and pri or '5', grp or ''
  local ring = ring_key(p)
  if p == '5' and not has_ring5() and redis.call('XLEN', K_STREAM) > 0 then
    -- Level 5 gets a ring while the stream holds jobs: the stream takes its turns too.
    redis.call('ZADD', ring, 0, '')
  end
  if not stream_busy then
    -- An entry that wakes a worker blocked on an empty stream.
    if redis.call('XLEN', K_STREAM) == 0 then redis.call('XADD', K_STREAM, '*', 'd', '1') end
    stream_busy = true
  end
  redis.call('HSET', key, 'st', 'pending', 'sid', 'L', 'ut', int(now))
  local list = ready_list(p, g)
  local ids = listed[list]
  if not ids then
    ids = {}
    listed[list] = ids
  end
  ids[#ids + 1] = id
  queued_delta = queued_delta + 1
  join_ring(ring, g)
  if p == '5' then ring5 = true end
  if not prio_known[p] then
    redis.call('ZADD', K_PRIOS, 'NX', tonumber(p), p)
    prio_known[p] = true
  end
end

-- Group -> ids whose lease ended (removed from the group's lease set by flush_groups).
local left_group = {}
local function leave_group(grp, id)
  if grp and grp ~= '' then
    left_group[grp] = left_group[grp] or {}
    push(left_group[grp], id)
  end
end
local function flush_groups()
  for g, ids in pairs(left_group) do call_chunked('ZREM', group_leases(g), nil, ids) end
end

-- A start deadline that passed: the job fails with Expired and 0 attempts (it never ran).
-- The caller takes it out of `deadlines` (deadline.lua does so for its whole batch).
local function expire_unstarted(key, id, now, retention, watched, owner)
  finalize(key, id, 'failure', now, retention, watched,
    {'ec', 'Expired', 'msg', 'not started by its start_by deadline'}, owner)
end

-- Fails, before any write, when `key` holds something other than a `want` (or nothing).
local function check_type(key, want)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= want then
    fail('WRONGTYPE ' .. key .. ' holds a ' .. t .. ', not a ' .. want .. '; nothing was changed')
  end
end

-- Checks, before any write, that the keys make_ready may write for a job of this
-- priority and group hold what Tether keeps there (once per script and route).
-- Checks, before any write, that a group's lease set (which leave_group updates) is one.
local groups_checked = {}
local function group_writable(grp)
  if not grp or grp == '' or groups_checked[grp] then return end
  groups_checked[grp] = true
  check_type(group_leases(grp), 'zset')
end

local routes_checked = {}
local function routable(pri, grp)
  -- (The default route, checked once per call: the common case, once per job.)
  if not pri and not grp and routes_checked[''] then return end
  group_writable(grp)
  local route = on_stream(pri, grp) and '' or (pri or '5') .. ':' .. (grp or '')
  if routes_checked[route] then return end
  routes_checked[route] = true
  -- (EXISTS, read once per script, is cheaper than TYPE on the path with no flow control.)
  if has_ring5() then check_type(ring_key('5'), 'zset') end
  if route == '' then return end
  local p, g = (pri and pri ~= '') and pri or '5', grp or ''
  check_type(ready_list(p, g), 'list')
  check_type(ring_key(p), 'zset')
  check_type(K_PRIOS, 'zset')
  writable(K_COUNTS)
end

-- Every script that makes jobs ready or ends leases ends with flush() (the index
-- updates of common.lua, then the groups' lease sets).
local flush_indexes = flush
local function flush()
  flush_indexes()
  flush_groups()
  for list, ids in pairs(listed) do call_chunked('RPUSH', list, nil, ids) end
  if queued_delta ~= 0 then redis.call('HINCRBY', K_COUNTS, 'queued', queued_delta) end
end

-- Takes a pending job out of the stream, for a cancel or an expiry. A list or held entry
-- ('L', 'H') is left behind, stale: the claim (or a resume) that reaches it skips it and
-- trims it. Removing it here would walk the list (LREM), whose length a tenant chooses.
local function unready(sid)
  if sid and string.match(sid, '^%d+%-%d+$') then
    redis.call('XDEL', K_STREAM, sid)
  elseif sid == 'L' or sid == 'H' then
    redis.call('HINCRBY', K_COUNTS, 'queued', -1)
  end
end

-- The flow part of a call's start (after begin_common).
local flow_prefix
local function begin_flow()
  if flow_prefix ~= PREFIX then
    flow_prefix = PREFIX
    K_SETTINGS, K_PRIOS, K_DEADLINES = PREFIX .. 'settings', PREFIX .. 'prios', PREFIX .. 'deadlines'
    K_STARTS, K_HELD_TYPES = PREFIX .. 'starts', PREFIX .. 'held_types'
  end
  ring5, stream_busy, queued_delta = nil, nil, 0
  if next(joined) ~= nil then joined = {} end
  if next(prio_known) ~= nil then prio_known = {} end
  if next(listed) ~= nil then listed = {} end
  if next(left_group) ~= nil then left_group = {} end
  if next(groups_checked) ~= nil then groups_checked = {} end
  if next(routes_checked) ~= nil then routes_checked = {} end
end
