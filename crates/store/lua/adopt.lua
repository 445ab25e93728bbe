-- A running parent records children it spawns (task trees), before they are enqueued:
-- a child's enqueue follows in its own queue's slot. Both are idempotent (the child's id
-- is derived from the parent and the child's key), so a parent that runs again after a
-- crash records and enqueues the same children, once each.
-- ARGV: prefix, parent id, token, then per child: index, "<child id> <child queue>"
-- Children are the parent's `kids:<id>` sorted set, scored by spawn index.
-- Returns {word, root id, owner ('' = none)}: OK or LOST (the lease is not the caller's).
local id, token = ARGV[2], ARGV[3]
local key = job_key(id)
local refusal, root, owner = check_lease(key, token, 'root', 'owner')
if refusal then return {'LOST', '', ''} end
local kids = PREFIX .. 'kids:' .. id
check_type(kids, 'zset')
local pairs_ = {}
for i = 4, #ARGV, 2 do
  if not tonumber(ARGV[i]) or not ARGV[i + 1] then fail('ERR adopt takes index/member pairs') end
  pairs_[#pairs_ + 1] = ARGV[i]
  pairs_[#pairs_ + 1] = ARGV[i + 1]
end
bounded(#pairs_ / 2)
if #pairs_ > 0 then call_chunked('ZADD', kids, 'NX', pairs_) end
return {'OK', root or id, owner or ''}
