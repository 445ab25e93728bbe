-- External tasks (vSphere TaskManager.CreateTask and HttpNfcLease): the library's third
-- part, after common.lua and flow.lua.
--
-- An external task is a job no worker runs: its creator drives it (drive.lua). Its record
-- has `ext` = its lease in ms and `ld` = the lease's deadline (ms, Redis clock), and the
-- queue's `ext` sorted set (job id -> deadline) lists the unfinished ones. It waits in no
-- ready structure and holds no worker lease, so it takes no concurrency slot. Each progress
-- report renews the lease; a lease that lapses ends the task (lapse.lua, run with the
-- reaper; drive.lua first, for a late call): failure `Timedout`, or cancelled when a
-- cancel was requested. A cancel only flags it (`creq`): the driver sees the flag in the
-- answer of its next progress report and ends the task itself.
-- Nothing here depends on the call but PREFIX, so begin() has nothing more to reset.

local function ext_key() return PREFIX .. 'ext' end

-- Ends an external task whose lease lapsed; returns the status it ended in. The caller
-- checked the keys finalize writes and the owner's counter (countable()), removes the id
-- from `ext` and ends with flush().
local function end_lapsed(key, id, now, retention, watched, creq, owner, lease_ms)
  local msg = 'no progress report within its lease of ' .. tostring(lease_ms) .. ' ms'
  if creq == '1' then
    finalize(key, id, 'cancelled', now, retention, watched, cancelled_fields(msg), owner)
    return 'cancelled'
  end
  finalize(key, id, 'failure', now, retention, watched, {'ec', 'Timedout', 'msg', msg}, owner)
  return 'failure'
end
