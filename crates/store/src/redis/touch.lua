-- ARGV[4]: new deadline; ARGV[5..]: member id, session pairs. Refreshes members whose
-- current connection is that session; returns the deadline, or 0 if none was refreshed.
local touched = 0
for i = 5, #ARGV, 2 do
  local st = redis.call('HGET', STATE, ARGV[i])
  if st and split(st)[1] == ARGV[i + 1] then
    redis.call('ZADD', ALIVE, 'XX', ARGV[4], ARGV[i])
    touched = tonumber(ARGV[4])
  end
end
return touched
