-- Lease holders record their attempts' outcomes (one job, or a batch of one queue).
-- ARGV: prefix, retention ms, then per job 8 arguments (at most MAX_BATCH jobs): id,
--       token, kind, a1..a5, by kind:
--   'success':   a1 = result (msgpack)
--   'error':     a1 = retryable (0/1), a2 = retry delay ms, a3 = message, a4 = code, a5 = info (JSON array)
--   'cancelled': a1 = message
-- Returns per job 'OK', 'RETRY' (scheduled again), 'DEAD' (failed for good), 'ALREADY:<status>'
-- (this lease had recorded its outcome before: a resend after a lost reply; the job's status
-- now tells what was recorded), 'LOST', or
-- 'NOT_REQUESTED' (cancelled without a cancel request).
local retention = arg_number(2)
bounded((#ARGV - 2) / 8)
writable(K_STREAM, K_DELAYED, K_LEASES, K_DONE, K_DEAD, K_COUNTS, K_ACTIVE)
local now = now_ms()

-- Phase 1: every argument and record read and checked; nothing written yet.
local plans, first_of = {}, {}
for i = 3, #ARGV, 8 do
  local id, token, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local plan = {id = id, kind = kind, a = {ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]}}
  if kind == 'error' then plan.delay = arg_number(i + 4) end
  local earlier = first_of[id .. ' ' .. token]
  if earlier then
    -- The same lease twice in one batch: the first one decides, the second is a resend.
    plan.duplicate = earlier
  else
    first_of[id .. ' ' .. token] = plan
    local v, refusal = check_lease(job_key(id), token, 'att', 'max', 'creq', 'w', 'owner', 'pri', 'grp')
    if v and kind == 'error' then routable(v[9], v[10]) end
    if refusal == 'ALREADY' then
      refusal = 'ALREADY:' .. (read_job(job_key(id), 'st')[1] or '')
    end
    plan.v, plan.refusal = v, refusal
  end
  plans[#plans + 1] = plan
end

-- Phase 2: writes.
local function finish_one(plan)
  local id, v, a = plan.id, plan.v, plan.a
  if not v then return plan.refusal end
  local key = job_key(id)
  local watched = v[7]
  if plan.kind ~= 'cancelled' or v[6] == '1' then leave_group(v[10], id) end
  if plan.kind == 'success' then
    finalize(key, id, 'success', now, retention, watched, {'res', a[1]}, v[8])
    return 'OK'
  elseif plan.kind == 'cancelled' then
    if v[6] ~= '1' then return 'NOT_REQUESTED' end
    finalize(key, id, 'cancelled', now, retention, watched, {'ec', 'RequestCanceled', 'msg', a[1]}, v[8])
    return 'OK'
  end
  if v[6] == '1' then
    -- Cancel was requested while the attempt failed: the cancel wins.
    finalize(key, id, 'cancelled', now, retention, watched, {'ec', 'RequestCanceled', 'msg', 'cancelled on request'}, v[8])
    return 'OK'
  end
  local err = {'msg', a[3], 'ec', a[4], 'ei', a[5]}
  if a[1] == '1' and (tonumber(v[4]) or 0) < (tonumber(v[5]) or 0) then
    redis.call('HSET', key, unpack(err))
    redis.call('HDEL', key, 'eta')
    push(unleased, id)
    if plan.delay > 0 then
      local due = int(now + plan.delay)
      redis.call('HSET', key, 'st', 'pending', 'ra', due, 'ut', int(now))
      redis.call('ZADD', K_DELAYED, due, id)
    else
      make_ready(key, id, now, v[9], v[10])
    end
    notify(id, watched)
    return 'RETRY'
  end
  finalize(key, id, 'failure', now, retention, watched, err, v[8])
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
