-- Lease holders record their attempts' outcomes (one job, or a batch of one queue).
-- ARGV: prefix, retention ms, then per job (at most MAX_BATCH jobs): id, token, kind, and
--       by kind (no empty arguments: each costs Redis more than its bytes):
--   'success':   result (msgpack)
--   'cancelled': message
--   'error':     retryable (0/1), retry delay ms, message, code, info (JSON array)
-- Returns per job 'OK', 'RETRY' (scheduled again), 'DEAD' (failed for good), 'ALREADY:<status>'
-- (this lease had recorded its outcome before: a resend after a lost reply; the job's status
-- now tells what was recorded; 'ALREADY' for the same lease twice in one batch), 'LOST', or
-- 'NOT_REQUESTED' (cancelled without a cancel request).
local retention = arg_number(2)
local now = now_ms()
local expires = int(now + retention)

-- A job's plan is an array (named positions below, set in its constructor: a table
-- with named fields costs a hash insert per field, and a finish makes one per job).
local P_ID, P_TOKEN, P_KIND, P_KEY, P_RESULT, P_RETRYABLE, P_DELAY, P_MESSAGE, P_CODE,
  P_INFO, P_REFUSAL, P_FIRST, P_ANSWER, P_NEXT, P_CREQ, P_WATCHED, P_OWNER, P_GRP,
  P_ATTEMPTS, P_MAX, P_PRI = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
  19, 20, 21

-- Phase 1: every argument and record read and checked; nothing written yet.
local plans, first_of, owners = {}, {}, {}
local any_final, any_error = false, false -- among the jobs whose lease holds
local ids = {}
local i = 3
while i <= #ARGV do
  local id, token, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local plan
  if kind == 'success' then
    plan = {id, token, kind, false, ARGV[i + 3], false, false, false, false, false, false,
      false, false, false, false, false, false, false, false, false, false}
    i = i + 4
  elseif kind == 'cancelled' then
    plan = {id, token, kind, false, false, false, false, ARGV[i + 3], false, false, false,
      false, false, false, false, false, false, false, false, false, false}
    i = i + 4
  elseif kind == 'error' then
    plan = {id, token, kind, false, false, ARGV[i + 3] == '1', arg_number(i + 4), ARGV[i + 5],
      ARGV[i + 6], ARGV[i + 7], false, false, false, false, false, false, false, false, false,
      false, false}
    i = i + 8
  else
    fail('ERR unknown outcome ' .. tostring(kind))
  end
  if i > #ARGV + 1 then fail('ERR the outcome of job ' .. tostring(id) .. ' lacks arguments') end
  plans[#plans + 1] = plan
  ids[#ids + 1] = id
end
bounded(#plans)
prefetch_leases(ids)
-- The fields a finish reads beside the lease (`st ep tk`), and an error's too (a retry
-- needs them). Each field named costs a scan of the record when absent.
local FINAL_FIELDS = {'creq', 'w', 'owner', 'grp'}
local ERROR_FIELDS = {'creq', 'w', 'owner', 'grp', 'att', 'max', 'pri'}
for _, plan in ipairs(plans) do
  local id, token, kind = plan[P_ID], plan[P_TOKEN], plan[P_KIND]
  -- The same lease twice in one batch: the first one decides, the second is a resend.
  -- (Plans of one id are chained: ids are the batch's own strings, no key is made.)
  local earlier = first_of[id]
  while earlier and earlier[P_TOKEN] ~= token do earlier = earlier[P_NEXT] end
  if earlier then
    plan[P_FIRST] = earlier
  else
    plan[P_NEXT] = first_of[id] or false
    first_of[id] = plan
    local key = job_key(id)
    plan[P_KEY] = key
    local refusal, v = check_lease_fields(key, token, kind == 'error' and ERROR_FIELDS or FINAL_FIELDS)
    if refusal == 'ALREADY' then
      local st = unpack(read_job(key, 'st'))
      refusal = 'ALREADY:' .. (st or '')
    elseif not refusal then
      local creq, watched, owner, grp, attempts, max, pri = unpack(v, 4, 10)
      plan[P_CREQ], plan[P_WATCHED], plan[P_OWNER], plan[P_GRP] = creq, watched, owner, grp
      if kind == 'error' then
        -- (An absent `att` is `ep`, layout 5.)
        plan[P_ATTEMPTS], plan[P_MAX], plan[P_PRI] = attempts or v[2], max, pri
        any_error = true
        routable(pri, grp)
      else
        any_final = true
        group_writable(grp)
      end
      if owner then owners[owner] = true end
    end
    plan[P_REFUSAL] = refusal or false
  end
end
-- The keys the outcomes write, each checked once (a batch of successes: `leases`, which
-- the leases' ZCOUNT has checked, `done` and `counts`).
if any_error then writable(K_LEASES, K_DONE, K_DEAD, K_COUNTS, K_STREAM, K_DELAYED)
elseif any_final then writable(K_LEASES, K_DONE, K_COUNTS) end
if next(owners) then writable(K_ACTIVE) end
countable(owners)

-- Phase 2: writes.
local successes = 0
local function finish_one(plan)
  if plan[P_REFUSAL] then return plan[P_REFUSAL] end
  local id, key, kind, creq, watched, owner =
    plan[P_ID], plan[P_KEY], plan[P_KIND], plan[P_CREQ], plan[P_WATCHED], plan[P_OWNER]
  -- Every outcome but an unrequested cancel ends the lease: its group's place is freed.
  if kind ~= 'cancelled' or creq == '1' then leave_group(plan[P_GRP], id) end
  if kind == 'success' and not creq and not watched and not owner then
    -- The common case, written here rather than by finalize (the same writes, without
    -- a table of fields per job): no cancel request to clear, no watcher, no owner.
    redis.call('HSET', key, 'st', 'success', 'ft', int(now), 'xt', expires, 'res', plan[P_RESULT])
    push(unleased, id)
    push(done, expires, id)
    successes = successes + 1
    return 'OK'
  elseif kind == 'success' then
    finalize(key, id, 'success', now, retention, watched, {'res', plan[P_RESULT]}, owner,
      creq == '1')
    return 'OK'
  elseif kind == 'cancelled' then
    if creq ~= '1' then return 'NOT_REQUESTED' end
    finalize(key, id, 'cancelled', now, retention, watched, cancelled_fields(plan[P_MESSAGE]), owner)
    return 'OK'
  end
  if creq == '1' then
    -- Cancel was requested while the attempt failed: the cancel wins.
    finalize(key, id, 'cancelled', now, retention, watched, cancelled_fields('cancelled on request'), owner)
    return 'OK'
  end
  local err = {'msg', plan[P_MESSAGE], 'ec', plan[P_CODE], 'ei', plan[P_INFO]}
  if plan[P_RETRYABLE] and (tonumber(plan[P_ATTEMPTS]) or 0) < (tonumber(plan[P_MAX]) or DEFAULT_MAX_ATTEMPTS) then
    redis.call('HSET', key, unpack(err))
    redis.call('HDEL', key, 'eta')
    push(unleased, id)
    if plan[P_DELAY] > 0 then
      local due = int(now + plan[P_DELAY])
      redis.call('HSET', key, 'st', 'pending', 'ra', due, 'ut', int(now))
      push(delayed, due, id)
    else
      make_ready(key, id, now, plan[P_PRI], plan[P_GRP])
    end
    notify(id, watched)
    return 'RETRY'
  end
  finalize(key, id, 'failure', now, retention, watched, err, owner, creq == '1')
  return 'DEAD'
end

local out = {}
for n, plan in ipairs(plans) do
  local first = plan[P_FIRST]
  if first then
    local answer = first[P_ANSWER]
    local wrote = answer == 'OK' or answer == 'RETRY' or answer == 'DEAD'
    out[n] = wrote and 'ALREADY' or answer
  else
    plan[P_ANSWER] = finish_one(plan)
    out[n] = plan[P_ANSWER]
  end
end
if successes > 0 then counted.success = (counted.success or 0) + successes end
flush()
return out
