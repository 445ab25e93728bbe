-- Hand leases back without spending an attempt: at shutdown (ready at once), or a job
-- this worker has no handler for (ready after a delay, so another worker claims it; the
-- delay doubles with each such hand-back of the job, counted in `hb`, up to 2 s).
-- ARGV: prefix, retention ms, delay ms, then id, token pairs (at most MAX_BATCH).
-- Returns how many were handed back.
-- A job whose cancel was requested is recorded cancelled instead.
local retention = arg_number(2)
local delay = arg_number(3)
if (#ARGV - 3) % 2 ~= 0 then fail('ERR release takes id, token pairs') end
bounded((#ARGV - 3) / 2)
writable(K_STREAM, K_DELAYED, K_LEASES, K_DONE, K_DEAD, K_COUNTS, K_ACTIVE)
local now = now_ms()

-- Phase 1: read every lease.
local held, seen, owners = {}, {}, {}
for i = 4, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  if not seen[id] then
    seen[id] = true
    local refusal, creq, watched, attempts, bounces, owner, pri, grp =
      check_lease(job_key(id), token, 'creq', 'w', 'att', 'hb', 'owner', 'pri', 'grp')
    if not refusal then
      routable(pri, grp)
      held[#held + 1] = {id = id, token = token, creq = creq, watched = watched, attempts = attempts,
        bounces = bounces, owner = owner, pri = pri, grp = grp}
      if owner then owners[owner] = true end
    end
  end
end
countable(owners)

-- Phase 2: writes.
for _, job in ipairs(held) do
  local id = job.id
  local key = job_key(id)
  leave_group(job.grp, id)
  if job.creq == '1' then
    finalize(key, id, 'cancelled', now, retention, job.watched, cancelled_fields('cancelled on request'), job.owner)
  else
    -- (An absent `att` is `ep`, layout 5: the token's.)
    local attempts = tonumber(job.attempts) or tonumber(string.match(job.token or '', '^%d+')) or 1
    redis.call('HSET', key, 'att', math.max(attempts - 1, 0))
    push(unleased, id)
    if delay > 0 then
      local bounces = (tonumber(job.bounces) or 0) + 1
      local due = now + math.min(delay * 2 ^ math.min(bounces - 1, 16), 2000)
      redis.call('HSET', key, 'st', 'pending', 'ra', due, 'ut', now, 'hb', bounces)
      push(delayed, due, id)
    else
      make_ready(key, id, now, job.pri, job.grp)
    end
    notify(id, job.watched)
  end
end
flush()
return #held
