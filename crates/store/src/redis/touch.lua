-- Runs for every hosted room every third of the presence grace, so it stands alone (no prelude)
-- with the keys it touches: KEYS: state, alive, meta. ARGV[1]: the new deadline; ARGV[2..]:
-- member id, session pairs (at most TOUCH_BATCH). Refreshes the members whose current connection
-- is that session. Returns {refreshed, gone, replaced}: how many were refreshed, and the
-- positions (1-based) of the pairs whose member is no longer in the room or has another session;
-- or {0, 'room_gone'} when the room itself is gone (its meta expired or deleted).
local STATE, ALIVE, deadline = KEYS[1], KEYS[2], ARGV[1]
if redis.call('EXISTS', KEYS[3]) == 0 then return {0, 'room_gone'} end
local ids = {}
for i = 2, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
local refresh, gone, replaced = {}, {}, {}
for j, st in ipairs(redis.call('HMGET', STATE, unpack(ids))) do
  -- A state is "session\nresume\nfold".
  local current = ARGV[2 * j + 1] .. '\n'
  if not st then
    gone[#gone + 1] = j
  elseif string.sub(st, 1, #current) == current then
    refresh[#refresh + 1] = deadline
    refresh[#refresh + 1] = ids[j]
  else
    replaced[#replaced + 1] = j
  end
end
if #refresh > 0 then redis.call('ZADD', ALIVE, 'XX', unpack(refresh)) end
return {#refresh / 2, gone, replaced}
