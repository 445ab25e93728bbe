-- Lease up to `count` ready jobs to a worker.
-- ARGV: prefix, count (at most MAX_BATCH), worker id, lease ttl ms, claim id (the
--       caller's random nonce for this call, hex)
-- Entries are read and removed in this one atomic step, so the stream never
-- holds an entry that was handed out but not leased. The consumer group is the
-- cursor: the entries after its last-delivered id are read (XRANGE), the cursor is
-- moved past them (XGROUP SETID; nothing enters a pending-entries list, so there is
-- nothing to acknowledge), and since every read happens here, everything up to the
-- last entry read has been delivered: one XTRIM MINID removes them all.
--
-- Each lease's token is the job's claim counter plus the claim id, so a claim
-- repeated after a failover lost the first one's writes issues another token.
-- The claim id and the jobs it leased are remembered for the worker (one small key
-- that lapses with the leases): the same claim sent again after a lost reply is
-- answered with those jobs instead of leasing more (nothing is written then).
--
-- Returns {now, lease deadline, {id, token, attempts, max, type, input, phase, checkpoint,
--          timeout, backoff, created, run_at}...}
local count, worker, ttl, claim_id = arg_number(2), ARGV[3], arg_number(4), ARGV[5]
if not string.match(claim_id, '^%x+$') then fail('ERR the claim id must be hex') end
count = math.max(1, math.min(count, MAX_BATCH))

-- A job's record as a claim reads it (nil when its key is no hash); a resend also reads
-- which claim and worker hold the job, and when its attempt started.
local function read_claimable(id, resend)
  local v
  if resend then
    v = read_job(job_key(id), 'st', 'sid', 'ep', 'att', 'max', 'type', 'in', 'ph', 'cp', 'to', 'bo',
      'ct', 'ra', 'w', 'tk', 'wk', 'stt')
  else
    v = read_job(job_key(id), 'st', 'sid', 'ep', 'att', 'max', 'type', 'in', 'ph', 'cp', 'to', 'bo',
      'ct', 'ra', 'w')
  end
  if not v then return nil end
  local st, sid, ep, att, max, job_type, input, phase, checkpoint, timeout, backoff, created, run_at,
    watched, nonce, holder, started = unpack(v)
  return {id = id, st = st, sid = sid, ep = ep, att = att, max = max, type = job_type, input = input,
    phase = phase, checkpoint = checkpoint, timeout = timeout, backoff = backoff, created = created,
    run_at = run_at, watched = watched, nonce = nonce, holder = holder, started = started}
end

local function row(job, token)
  return {job.id, token, tonumber(job.att) or 0, job.max, job.type, job.input, job.phase or '',
    job.checkpoint or '', job.timeout or '', job.backoff or '', job.created, job.run_at or ''}
end

local record_key = PREFIX .. 'claim:' .. worker
local record = redis.call('GET', record_key) -- a wrong type fails here, before any write
local now = now_ms()
if record and string.sub(record, 1, #claim_id + 1) == claim_id .. ':' then
  -- A resend: answer the jobs of that claim still leased to it.
  local out = {now, now + ttl}
  for id in string.gmatch(string.sub(record, #claim_id + 2), '[^,]+') do
    local job = read_claimable(id, true)
    if job and job.st == 'processing' and job.nonce == claim_id and job.holder == worker then
      out[1] = tonumber(job.started) or now
      out[2] = tonumber(redis.call('ZSCORE', K_LEASES, id)) or out[2]
      out[#out + 1] = row(job, token_of(job.ep, job.nonce))
    end
  end
  return out
end

local deadline = now + ttl
local out = {now, deadline}
writable(K_STREAM, K_LEASES)
if redis.call('TYPE', K_STREAM)['ok'] == 'none' then fail('NOGROUP the queue has no stream') end
-- XREADGROUP '>' hands out the entries after the group's cursor: read them first.
local cursor
for _, group in ipairs(redis.call('XINFO', 'GROUPS', K_STREAM)) do
  local fields = {}
  for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
  if fields['name'] == GROUP then cursor = fields['last-delivered-id'] end
end
if not cursor then fail('NOGROUP the queue has no consumer group') end
local entries = redis.call('XRANGE', K_STREAM, '(' .. cursor, '+', 'COUNT', count)
if #entries == 0 then return out end
local last_ms, last_seq = string.match(entries[#entries][1], '^(%d+)-(%d+)$')

local jobs, ids = {}, {}
for _, entry in ipairs(entries) do
  local sid, id = entry[1], entry[2][2]
  local job = id and read_claimable(id)
  -- A cancelled or re-queued job (or a key that is no record) leaves a stale entry: skip it.
  if job and job.st == 'pending' and job.sid == sid then
    jobs[#jobs + 1] = job
    ids[#ids + 1] = id
  end
end

-- Writes. The first is a denyoom SET: out of memory, the claim is refused here, whole.
if #jobs > 0 then
  redis.call('SET', record_key, claim_id .. ':' .. table.concat(ids, ','), 'PX', ttl)
end
-- The group's cursor moves past what was read above (XREADGROUP would read the same
-- entries a second time and hand them to Lua again, for nothing).
redis.call('XGROUP', 'SETID', K_STREAM, GROUP, entries[#entries][1])
redis.call('XTRIM', K_STREAM, 'MINID', string.format('%s-%d', last_ms, tonumber(last_seq) + 1))
for _, job in ipairs(jobs) do
  local epoch = int((tonumber(job.ep) or 0) + 1)
  job.att = (tonumber(job.att) or 0) + 1
  redis.call('HSET', job_key(job.id), 'st', 'processing', 'ep', epoch, 'tk', claim_id,
    'att', int(job.att), 'wk', worker, 'stt', int(now), 'ut', int(now), 'pg', '0')
  push(leased, int(deadline), job.id)
  notify(job.id, job.watched)
  out[#out + 1] = row(job, token_of(epoch, claim_id))
end
flush()
return out
