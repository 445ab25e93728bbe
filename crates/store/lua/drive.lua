-- A call of an external task's driver: vSphere UpdateProgress, SetTaskDescription and
-- SetTaskState; HttpNfcLeaseProgress, HttpNfcLeaseComplete and HttpNfcLeaseAbort.
-- ARGV: prefix, id, owner ('' = any), retention ms, operation, then by operation:
--   progress  percent (clamped to 0-100), message ('' keeps the current one)
--   describe  the phase text (progress_message)
--   complete  result (MessagePack; '' = none)
--   abort     error code ('' = Aborted), message ('' = a default)
-- Only `progress` renews the lease (and moves a pending task to processing). A task whose
-- lease lapsed is ended first, as lapse.lua would: a late call finds it final and changes
-- nothing else.
-- Returns {word, status, progress, cancel requested (0/1), lease deadline ms (0 = none)};
-- word: OK, NOT_FOUND (no such job, or not the owner's), NOT_SUPPORTED (not an external
-- task) or INVALID:<status> (it is final).
local id, owner, retention, op = ARGV[2], ARGV[3], arg_number(4), ARGV[5]
local pct
if op == 'progress' then
  pct = math.floor(math.max(0, math.min(100, arg_number(6))))
elseif op ~= 'describe' and op ~= 'complete' and op ~= 'abort' then
  fail('ERR unknown operation ' .. tostring(op))
end
if not ARGV[6] or (op ~= 'complete' and op ~= 'describe' and not ARGV[7]) then
  fail('ERR ' .. op .. ' takes more arguments')
end
local key = job_key(id)
local v = read_job(key, 'st', 'owner', 'ext', 'creq', 'w', 'pg', 'stt', 'ld')
local st, job_owner, lease, creq, watched, pg, started, deadline = unpack(v or {})
if not st and owner == '' and is_waiting(id) then return {'NOT_SUPPORTED', 'pending', 0, 0, 0} end
if not st or (owner ~= '' and job_owner ~= owner) then return {'NOT_FOUND', '', 0, 0, 0} end
if not lease then return {'NOT_SUPPORTED', st, tonumber(pg) or 0, 0, 0} end
if is_final(st) then return {'INVALID:' .. st, st, tonumber(pg) or 0, 0, 0} end
local lease_ms, deadline_ms = tonumber(lease), tonumber(deadline)
if not lease_ms or not deadline_ms then fail('ERR job ' .. id .. ' has a malformed lease') end
local K_EXT = ext_key()
writable(K_LEASES, K_DONE, K_DEAD, K_COUNTS, K_ACTIVE)
check_type(K_EXT, 'zset')
countable({[job_owner] = true})
local now = now_ms()
local cancel = (creq == '1') and 1 or 0

-- Writes, a denyoom one (HSET, in finalize too) first.
if deadline_ms <= now then
  local ended = end_lapsed(key, id, now, retention, watched, creq, job_owner, lease_ms)
  redis.call('ZREM', K_EXT, id)
  flush()
  return {'INVALID:' .. ended, ended, 100, 0, 0}
end
if op == 'complete' then
  local fields = {}
  if ARGV[6] ~= '' then fields = {'res', ARGV[6]} end
  finalize(key, id, 'success', now, retention, watched, fields, job_owner)
  redis.call('ZREM', K_EXT, id)
  flush()
  return {'OK', 'success', 100, cancel, 0}
end
if op == 'abort' then
  local code = (ARGV[6] ~= '') and ARGV[6] or 'Aborted'
  local msg = (ARGV[7] ~= '') and ARGV[7] or 'aborted by its driver'
  finalize(key, id, 'failure', now, retention, watched, {'ec', code, 'msg', msg}, job_owner)
  redis.call('ZREM', K_EXT, id)
  flush()
  return {'OK', 'failure', 100, cancel, 0}
end
if op == 'describe' then
  redis.call('HSET', key, 'pmsg', ARGV[6], 'ut', int(now))
  notify(id, watched)
  return {'OK', st, tonumber(pg) or 0, cancel, deadline_ms}
end
-- progress
local renewed_to = now + lease_ms
if st == 'pending' then
  started = int(now)
  redis.call('HSET', key, 'st', 'processing', 'stt', started, 'pg', pct, 'ut', int(now), 'ld', int(renewed_to))
else
  redis.call('HSET', key, 'pg', pct, 'ut', int(now), 'ld', int(renewed_to))
end
if ARGV[7] ~= '' then redis.call('HSET', key, 'pmsg', ARGV[7]) end
-- The completion time at the rate shown since the first report (progress.rs's estimate).
local elapsed = now - (tonumber(started) or now)
if pct > 0 and pct < 100 and elapsed > 0 then
  redis.call('HSET', key, 'eta', int(now + math.floor(elapsed * (100 - pct) / pct)))
else
  redis.call('HDEL', key, 'eta')
end
redis.call('ZADD', K_EXT, int(renewed_to), id)
notify(id, watched)
return {'OK', 'processing', pct, cancel, renewed_to}
