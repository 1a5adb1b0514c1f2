-- KEYS[1]: a fixed-window counter; ARGV[1]: window (ms). Returns the count in this window.
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return count
