-- ARGV[4]: the author's member id; ARGV[5]: the frame to relay, as Rust serialized it.
if not alive_until() then return {'refused', 'room_not_found'} end
if redis.call('HEXISTS', MEMBERS, ARGV[4]) == 0 then return {'refused', 'unauthorized'} end
redis.call('SPUBLISH', CHANNEL, ARGV[5])
return {'ok'}
