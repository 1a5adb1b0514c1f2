-- KEYS[1]: a fixed-window counter; ARGV[1]: window (ms). Returns the count in this window and
-- the milliseconds left of it.
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('PTTL', KEYS[1])}
