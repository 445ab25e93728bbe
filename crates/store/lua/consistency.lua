-- Read-only: checks that a queue's records, stream, indexes and counters agree.
-- ARGV: prefix. Returns a list of violations (empty when consistent).
-- It walks every retained job, so run it in tests and diagnostics, not on a hot path.
local problems = {}
local function problem(text) problems[#problems + 1] = text end
local function set_of(list)
  local s = {}
  for _, member in ipairs(list) do s[member] = true end
  return s
end

local leases = set_of(redis.call('ZRANGE', K_LEASES, 0, -1))
local delayed = set_of(redis.call('ZRANGE', K_DELAYED, 0, -1))
local done = set_of(redis.call('ZRANGE', K_DONE, 0, -1))
local dead = set_of(redis.call('ZRANGE', K_DEAD, 0, -1))
local jobs = redis.call('ZRANGE', K_JOBS, 0, -1)
local entries = {}
for _, e in ipairs(redis.call('XRANGE', K_STREAM, '-', '+')) do
  local id = e[2][2]
  if entries[id] then problem('job ' .. id .. ' has two stream entries') end
  entries[id] = e[1]
end
local pending_entries = redis.call('XPENDING', K_STREAM, GROUP)[1]
if tonumber(pending_entries) ~= 0 then problem(pending_entries .. ' stream entries delivered but not acknowledged') end

local counted = {success = 0, failure = 0, cancelled = 0}
local known = {}
for _, id in ipairs(jobs) do
  known[id] = true
  local v = redis.call('HMGET', job_key(id), 'st', 'sid', 'ra', 'dead', 'pg', 'xt')
  local st = v[1]
  if not st then
    problem('job ' .. id .. ' is indexed but has no record')
  else
    if st == 'processing' and not leases[id] then problem('processing job ' .. id .. ' has no lease') end
    if st ~= 'processing' and leases[id] then problem(st .. ' job ' .. id .. ' holds a lease') end
    if st == 'pending' then
      local ready = entries[id] ~= nil and entries[id] == v[2]
      if not ready and not delayed[id] then problem('pending job ' .. id .. ' is neither ready nor scheduled') end
      if ready and delayed[id] then problem('pending job ' .. id .. ' is both ready and scheduled') end
    elseif delayed[id] then
      problem(st .. ' job ' .. id .. ' is scheduled')
    end
    if entries[id] and (st ~= 'pending' or entries[id] ~= v[2]) then
      problem(st .. ' job ' .. id .. ' has a live stream entry')
    end
    local final = st == 'success' or st == 'failure' or st == 'cancelled'
    if final then
      counted[st] = counted[st] + 1
      if not done[id] then problem('finished job ' .. id .. ' is missing from done') end
      if v[5] ~= '100' then problem('finished job ' .. id .. ' has progress ' .. tostring(v[5])) end
    elseif done[id] then
      problem(st .. ' job ' .. id .. ' is in done')
    end
    if (st == 'failure' and v[4] == '1') ~= (dead[id] ~= nil) then problem('job ' .. id .. ' dead flag and dead index disagree') end
  end
end
for _, index in ipairs({{leases, 'leases'}, {delayed, 'delayed'}, {done, 'done'}, {dead, 'dead'}, {entries, 'stream'}}) do
  for id in pairs(index[1]) do
    if not known[id] then problem(index[2] .. ' holds unknown job ' .. id) end
  end
end
for status, n in pairs(counted) do
  local stored = tonumber(redis.call('HGET', K_COUNTS, status) or '0')
  if stored ~= n then problem('counts.' .. status .. ' is ' .. stored .. ', records say ' .. n) end
end
return problems
