-- A running parent records children it spawns (task trees), before they are enqueued:
-- a child's enqueue follows in its own queue's slot. Both are idempotent (the child's id
-- is derived from the parent and the child's key), so a parent that runs again after a
-- crash records and enqueues the same children, once each.
-- An external task's driver spawns children too: its token is then 'ext:<owner>' (the
-- caller's owner, '' for an administrator), checked like a drive call instead of a lease.
-- ARGV: prefix, parent id, token, then per child: index ('' = after the last one),
--       "<child id> <child queue>"
-- Children are the parent's `kids:<id>` sorted set, scored by spawn index.
-- Returns {word, root id, owner ('' = none)}: OK or LOST (the lease is not the caller's);
-- for an external parent NOT_FOUND (no such task of the caller's), NOT_SUPPORTED (not an
-- external task) or INVALID:<status> (it ended, its cancel is requested or its lease
-- lapsed).
local id, token = ARGV[2], ARGV[3]
local key = job_key(id)
local refusal, root, owner
if string.sub(token, 1, 4) == 'ext:' then
  local caller, st, ext, creq, deadline = string.sub(token, 5), nil, nil, nil, nil
  st, ext, root, owner, creq, deadline =
    unpack(read_job(key, 'st', 'ext', 'root', 'owner', 'creq', 'ld') or {})
  if not st or (caller ~= '' and owner ~= caller) then return {'NOT_FOUND', '', ''} end
  if not ext then return {'NOT_SUPPORTED', '', ''} end
  if is_final(st) then return {'INVALID:' .. st, '', ''} end
  -- A task whose cancel is requested, or whose lease lapsed (its end not yet recorded),
  -- spawns nothing more: the cancel's walk of its children may be over already.
  if creq == '1' or (tonumber(deadline) or math.huge) <= now_ms() then
    return {'INVALID:' .. st, '', ''}
  end
else
  refusal, root, owner = check_lease(key, token, 'root', 'owner')
  if refusal then return {'LOST', '', ''} end
end
local kids = PREFIX .. 'kids:' .. id
check_type(kids, 'zset')
local pairs_ = {}
local after = redis.call('ZCARD', kids)
for i = 4, #ARGV, 2 do
  -- (The index goes to ZADD as the number read here, not as sent: ZADD refuses what
  -- tonumber takes (" 1", "nan"), and this call's ZADDs are chunked: a later one
  -- failing would leave the first's children recorded.)
  local index = ARGV[i] == '' and after + #pairs_ / 2 or tonumber(ARGV[i])
  if not finite(index) or not ARGV[i + 1] then fail('ERR adopt takes index/member pairs') end
  pairs_[#pairs_ + 1] = index
  pairs_[#pairs_ + 1] = ARGV[i + 1]
end
bounded(#pairs_ / 2)
if #pairs_ > 0 then call_chunked('ZADD', kids, 'NX', pairs_) end
return {'OK', root or id, owner or ''}
