-- KEYS[1]: the places one client holds for its rooms (a sorted set by the rooms' expiry).
-- ARGV[1]: now (ms); ARGV[2]: a new place (random); ARGV[3]: its room's expiry; ARGV[4]: most
-- places at once. Places past their expiry go first. Returns 1 if the place is held, else 0.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
-- The set lives as long as its latest room.
local latest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], latest[2])
return 1
