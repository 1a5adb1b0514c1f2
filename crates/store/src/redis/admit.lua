-- KEYS[1]: the deadline schedule, which has one entry per room. ARGV[1]: the new room;
-- ARGV[2]: its expiry; ARGV[3]: most rooms at once. Enters the room (its first deadline is its
-- expiry) unless the schedule is full: 1 if entered, 0 if not.
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
