-- KEYS[1]: the deadline schedule. ARGV[1]: now; ARGV[2]: lease (ms); ARGV[3]: most rooms.
-- Leases the due rooms to the caller: their entries move to now + lease, so another instance
-- takes them over if this one dies before rescheduling them.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local lease = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, room in ipairs(due) do redis.call('ZADD', KEYS[1], lease, room) end
return {lease, due}
