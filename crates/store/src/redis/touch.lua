-- Runs for every hosted room every third of the presence grace, so it stands alone (no prelude)
-- with the two keys it touches: KEYS: state, alive. ARGV[1]: the new deadline; ARGV[2..]:
-- member id, session pairs (at most TOUCH_BATCH). Refreshes the members whose current connection
-- is that session; returns the deadline, or 0 if none was refreshed.
local STATE, ALIVE, deadline = KEYS[1], KEYS[2], ARGV[1]
local ids = {}
for i = 2, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
local refresh = {}
for j, st in ipairs(redis.call('HMGET', STATE, unpack(ids))) do
  -- A state is "session\nresume\nfold".
  local current = ARGV[2 * j + 1] .. '\n'
  if st and string.sub(st, 1, #current) == current then
    refresh[#refresh + 1] = deadline
    refresh[#refresh + 1] = ids[j]
  end
end
if #refresh == 0 then return 0 end
redis.call('ZADD', ALIVE, 'XX', unpack(refresh))
return tonumber(deadline)
