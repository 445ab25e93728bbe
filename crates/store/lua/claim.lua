-- Lease up to `count` ready jobs to a worker.
-- ARGV: prefix, count, worker id, lease ttl ms
-- Entries are read, acknowledged and deleted in this one atomic step, so the
-- stream never holds an entry that was handed out but not leased.
-- Returns {now, lease deadline, {id, epoch, attempts, max, type, input, phase, checkpoint,
--          timeout, backoff, created, run_at}...}
local count, worker, ttl = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local now = now_ms()
local deadline = now + ttl
local out = {now, deadline}
local read = redis.call('XREADGROUP', 'GROUP', GROUP, 'tether', 'COUNT', count, 'STREAMS', K_STREAM, '>')
if not read then return out end
local entries = read[1][2]
local sids = {}
for i, entry in ipairs(entries) do sids[i] = entry[1] end
redis.call('XACK', K_STREAM, GROUP, unpack(sids))
redis.call('XDEL', K_STREAM, unpack(sids))
for _, entry in ipairs(entries) do
  local sid, id = entry[1], entry[2][2]
  local key = job_key(id)
  local v = redis.call('HMGET', key, 'st', 'sid', 'ep', 'att', 'max', 'type', 'in', 'ph', 'cp', 'to', 'bo', 'ct', 'ra', 'w')
  -- A cancelled or re-queued job leaves a stale entry behind: skip it.
  if v[1] == 'pending' and v[2] == sid then
    local epoch = (tonumber(v[3]) or 0) + 1
    local attempts = (tonumber(v[4]) or 0) + 1
    redis.call('HSET', key, 'st', 'processing', 'ep', epoch, 'att', attempts, 'wk', worker,
      'stt', now, 'ut', now, 'pg', 0)
    push(leased, deadline, id)
    notify(id, v[14])
    out[#out + 1] = {id, epoch, attempts, v[5], v[6], v[7], v[8] or '', v[9] or '', v[10] or '',
      v[11] or '', v[12], v[13] or ''}
  end
end
flush()
return out
