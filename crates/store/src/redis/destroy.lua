-- ARGV[4]: the room_closed frame. Returns 1 if the room existed.
if redis.call('EXISTS', META) == 0 then return 0 end
destroy(ARGV[4])
return 1
