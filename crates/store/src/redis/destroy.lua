-- ARGV[4]: the room_closed frame. Returns {1, the creator's hold (see redis.rs `hold`)} if the
-- room existed, else {0}.
if redis.call('EXISTS', META) == 0 then return {0} end
return {1, destroy(ARGV[4])}
