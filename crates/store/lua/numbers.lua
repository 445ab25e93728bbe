-- Shared by the function library (before common.lua) and the schedule scripts (before
-- schedules/common.lua): each prepends this file.

-- Whether `n` is a number a script may compute with and store: not NaN or infinite
-- (tonumber takes "nan" and "inf", msgpack has both: a NaN fails a table index, and
-- neither formats as an integer, wherever the script is by then; stored, they would
-- be read back as garbage times and leases), and within ±2^53, where doubles hold
-- every integer (past it, a time or a count loses precision, and past 2^63 '%d'
-- formats garbage: a retention of 1e300 made an expiry of -9223372036854775808).
-- Times are ms (about 2^41 today), counts far smaller.
local MAX_EXACT = 9007199254740992
local function finite(n)
  return type(n) == 'number' and n >= -MAX_EXACT and n <= MAX_EXACT
end
