-- After a handover, the new owner's connection sets its owner token. ARGV[4]: its member id;
-- ARGV[5]: the token's hash. Returns {'ok', 1} if set, {'ok', 0} if not (not the owner, or a
-- token was set since the handover).
if not alive_until() then return {'refused', 'room_not_found'} end
local m = redis.call('HMGET', META, 'owner_id', 'owner_pending')
if m[1] ~= ARGV[4] or m[2] ~= '1' then return {'ok', 0} end
redis.call('HSET', META, 'owner_token', ARGV[5])
redis.call('HDEL', META, 'owner_pending')
return {'ok', 1}
