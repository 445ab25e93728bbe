-- Lease up to `count` ready jobs to a worker.
-- ARGV: prefix, count, worker id, lease ttl ms
-- Entries are read and removed in this one atomic step, so the stream never
-- holds an entry that was handed out but not leased. NOACK keeps them out of the
-- pending-entries list (nothing to acknowledge), and since the group hands out
-- entries in id order and every read happens here, everything up to the last
-- entry read has been delivered: one XTRIM MINID removes them all.
-- Returns {now, lease deadline, {id, epoch, attempts, max, type, input, phase, checkpoint,
--          timeout, backoff, created, run_at}...}
local count, worker, ttl = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local now = now_ms()
local deadline = now + ttl
local out = {now, deadline}
local read = redis.call('XREADGROUP', 'GROUP', GROUP, 'tether', 'COUNT', count, 'NOACK', 'STREAMS', K_STREAM, '>')
if not read then return out end
local entries = read[1][2]
local last_ms, last_seq = string.match(entries[#entries][1], '^(%d+)-(%d+)$')
redis.call('XTRIM', K_STREAM, 'MINID', string.format('%s-%d', last_ms, tonumber(last_seq) + 1))
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
