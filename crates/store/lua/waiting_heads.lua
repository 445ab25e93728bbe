-- Read-only: the entry id and type of each waiting job named (layout 4), for the
-- listings, which show no input: a plain job's input, which may be large, stays in
-- Redis.
-- ARGV: prefix, then the 16 bytes of each id (at most MAX_BATCH).
-- Returns per id '<entry id> <type>', or false when it is not waiting.
bounded(#ARGV - 1)
local out = {}
if #ARGV < 2 then return out end
for i, v in ipairs(redis.call('HMGET', K_WAITING, unpack(ARGV, 2))) do
  local sid, job_type
  if v then sid, job_type = parse_waiting(v) end
  out[i] = sid and sid .. ' ' .. job_type or false
end
return out
