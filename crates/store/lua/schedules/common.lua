-- Prelude shared by the schedule scripts (prepended at build time). They follow the
-- conventions of ../common.lua (its reply words; no failure after the first write) but
-- take the keys of the `{~sched}` slot, so they have this prelude instead of that one.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A number argument, or nil when it is none or not finite (numbers.lua).
local function finite_number(v)
  local n = tonumber(v)
  if finite(n) then return n end
  return nil
end

-- Checks that the sorted sets a script will write are sorted sets or nothing yet, so
-- that no write after the first can fail.
local function zsets_writable(...)
  for _, key in ipairs({...}) do
    local t = redis.call('TYPE', key)['ok']
    if t ~= 'none' and t ~= 'zset' then
      error({err = 'WRONGTYPE ' .. key .. ' holds a ' .. t .. ', not a zset; nothing was changed'})
    end
  end
end

