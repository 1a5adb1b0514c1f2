-- KEYS[1]: the deadline schedule. ARGV[1]: room; ARGV[2]: deadline. Moves the room's entry
-- earlier, never later (a late entry just finds nothing due).
local current = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not current or tonumber(ARGV[2]) < tonumber(current) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
end
return 'ok'
