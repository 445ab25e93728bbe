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

-- Phase 1: every argument and record read and checked; nothing written yet.
local plans, first_of, owners = {}, {}, {}
local any_final, any_error = false, false -- among the jobs whose lease holds
local ids = {}
local i = 3
while i <= #ARGV do
  local id, token, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  -- (Every field a plan may get is in the constructor: no table grows past its size.)
  local plan = {id = id, key = nil, token = token, kind = kind, result = nil, message = nil,
    retryable = nil, delay = nil, code = nil, info = nil, job = nil, refusal = nil,
    duplicate = nil, answer = nil}
  if kind == 'success' then
    plan.result, i = ARGV[i + 3], i + 4
  elseif kind == 'cancelled' then
    plan.message, i = ARGV[i + 3], i + 4
  elseif kind == 'error' then
    plan.retryable, plan.delay = ARGV[i + 3] == '1', arg_number(i + 4)
    plan.message, plan.code, plan.info = ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
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
for _, plan in ipairs(plans) do
  local id, token, kind = plan.id, plan.token, plan.kind
  local earlier = first_of[id .. ' ' .. token]
  if earlier then
    -- The same lease twice in one batch: the first one decides, the second is a resend.
    plan.duplicate = earlier
  else
    first_of[id .. ' ' .. token] = plan
    -- (Each field asked for costs a scan of the record when absent: the priority is
    -- read only where a retry may need it; so are the attempts.)
    local refusal, creq, watched, owner, grp, attempts, max, pri
    local key = job_key(id)
    plan.key = key
    if kind == 'error' then
      refusal, creq, watched, owner, grp, attempts, max, pri =
        check_lease(key, token, 'creq', 'w', 'owner', 'grp', 'att', 'max', 'pri')
    else
      refusal, creq, watched, owner, grp = check_lease(key, token, 'creq', 'w', 'owner', 'grp')
    end
    if refusal == 'ALREADY' then
      local st = unpack(read_job(key, 'st'))
      refusal = 'ALREADY:' .. (st or '')
    elseif not refusal then
      plan.job = {attempts = attempts, max = max, creq = creq, watched = watched, owner = owner,
        pri = pri, grp = grp}
      if kind == 'error' then
        any_error = true
        routable(pri, grp)
      else
        any_final = true
        group_writable(grp)
      end
      if owner then owners[owner] = true end
    end
    plan.refusal = refusal
  end
end
-- The keys the outcomes write, each checked once (a batch of successes: `leases`, which
-- the leases' ZCOUNT has checked, `done` and `counts`).
if any_error then writable(K_LEASES, K_DONE, K_DEAD, K_COUNTS, K_STREAM, K_DELAYED)
elseif any_final then writable(K_LEASES, K_DONE, K_COUNTS) end
if next(owners) then writable(K_ACTIVE) end
countable(owners)

-- Phase 2: writes.
local function finish_one(plan)
  if plan.refusal then return plan.refusal end
  local id, job, key = plan.id, plan.job, plan.key
  -- Every outcome but an unrequested cancel ends the lease: its group's place is freed.
  if plan.kind ~= 'cancelled' or job.creq == '1' then leave_group(job.grp, id) end
  if plan.kind == 'success' then
    finalize(key, id, 'success', now, retention, job.watched, {'res', plan.result}, job.owner,
      job.creq == '1')
    return 'OK'
  elseif plan.kind == 'cancelled' then
    if job.creq ~= '1' then return 'NOT_REQUESTED' end
    finalize(key, id, 'cancelled', now, retention, job.watched, cancelled_fields(plan.message), job.owner)
    return 'OK'
  end
  if job.creq == '1' then
    -- Cancel was requested while the attempt failed: the cancel wins.
    finalize(key, id, 'cancelled', now, retention, job.watched, cancelled_fields('cancelled on request'), job.owner)
    return 'OK'
  end
  local err = {'msg', plan.message, 'ec', plan.code, 'ei', plan.info}
  if plan.retryable and (tonumber(job.attempts) or 0) < (tonumber(job.max) or DEFAULT_MAX_ATTEMPTS) then
    redis.call('HSET', key, unpack(err))
    redis.call('HDEL', key, 'eta')
    push(unleased, id)
    if plan.delay > 0 then
      local due = int(now + plan.delay)
      redis.call('HSET', key, 'st', 'pending', 'ra', due, 'ut', int(now))
      push(delayed, due, id)
    else
      make_ready(key, id, now, job.pri, job.grp)
    end
    notify(id, job.watched)
    return 'RETRY'
  end
  finalize(key, id, 'failure', now, retention, job.watched, err, job.owner, job.creq == '1')
  return 'DEAD'
end

local out = {}
for _, plan in ipairs(plans) do
  if plan.duplicate then
    local first = plan.duplicate.answer
    local wrote = first == 'OK' or first == 'RETRY' or first == 'DEAD'
    out[#out + 1] = wrote and 'ALREADY' or first
  else
    plan.answer = finish_one(plan)
    out[#out + 1] = plan.answer
  end
end
flush()
return out
