-- Shared by the function library (before common.lua) and the schedule scripts (before
-- schedules/common.lua): each prepends this file.

-- Whether `n` is a finite number (tonumber takes "nan" and "inf", msgpack has both: a
-- NaN fails a table index, and neither formats as an integer, wherever the script is
-- by then; stored, they would be read back as garbage times and leases).
local function finite(n)
  return type(n) == 'number' and n == n and n ~= math.huge and n ~= -math.huge
end
