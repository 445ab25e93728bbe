-- Heartbeat: renew the leases of many jobs of one queue in one call.
-- ARGV: prefix, lease ttl ms, then id, token pairs (at most MAX_BATCH).
-- Returns {deadline, {word...}}, a word per lease in order: 'OK' (renewed),
-- 'CANCEL_REQUESTED' (renewed, and a cancel was requested) or 'LOST' (the worker must
-- stop the job and write nothing).
local ttl = arg_number(2)
bounded((#ARGV - 2) / 2)
writable(K_LEASES)
local deadline = now_ms() + ttl
local words, ids = {}, {}
for i = 3, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
prefetch_leases(ids)
-- (One field list for every job: check_lease would copy its varargs into a table per job.)
local FIELDS = {'creq'}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local refusal, v = check_lease_fields(job_key(id), token, FIELDS)
  if refusal then
    words[#words + 1] = 'LOST'
  else
    push(renewed, int(deadline), id)
    words[#words + 1] = (v[4] == '1') and 'CANCEL_REQUESTED' or 'OK'
  end
end
flush()
return {deadline, words}
