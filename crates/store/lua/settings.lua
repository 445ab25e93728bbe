-- Change a queue's flow control (the hash `settings`, read by every claim).
-- ARGV: prefix, then field/value pairs: conc, rate, gconc, grate ('' clears one),
--       paused ('1' / ''), pause_type <type>, resume_type <type>.
-- Paused types are one comma-separated field, so a claim reads everything in one HMGET.
-- Returns the settings after the change as a flat field/value list.
check_type(K_SETTINGS, 'hash')
local MAX_PAUSED_TYPES = 100
local current = redis.call('HGET', K_SETTINGS, 'ptypes') or ''
local types, order = {}, {}
for t in string.gmatch(current, '[^,]+') do
  if not types[t] then types[t] = true order[#order + 1] = t end
end
local set, clear = {}, {}
for i = 2, #ARGV - 1, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  if field == 'conc' or field == 'rate' or field == 'gconc' or field == 'grate' then
    if value == '' then clear[#clear + 1] = field
    elseif string.match(value, '^[1-9]%d*$') and #value <= 7 then push(set, field, value)
    else fail('ERR ' .. field .. ' must be a positive integer') end
  elseif field == 'paused' then
    if value == '1' then push(set, 'paused', '1') else clear[#clear + 1] = 'paused' end
  elseif field == 'pause_type' or field == 'resume_type' then
    if not string.match(value, '^[%w_.:%-]+$') or #value > 128 then fail('ERR invalid job type') end
    if field == 'pause_type' and not types[value] then
      if #order >= MAX_PAUSED_TYPES then fail('ERR at most ' .. MAX_PAUSED_TYPES .. ' paused types') end
      types[value] = true
      order[#order + 1] = value
    elseif field == 'resume_type' then
      types[value] = nil
    end
  else
    fail('ERR unknown setting ' .. tostring(field))
  end
end
local kept = {}
for _, t in ipairs(order) do if types[t] then kept[#kept + 1] = t end end

-- Writes.
if #kept > 0 then push(set, 'ptypes', table.concat(kept, ',')) else clear[#clear + 1] = 'ptypes' end
if #set > 0 then redis.call('HSET', K_SETTINGS, unpack(set)) end
if #clear > 0 then redis.call('HDEL', K_SETTINGS, unpack(clear)) end
return redis.call('HGETALL', K_SETTINGS)
