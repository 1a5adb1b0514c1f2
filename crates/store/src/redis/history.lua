-- The kept messages (oldest first) and the latest id.
if not alive_until() then return {'refused', 'room_not_found'} end
return {'ok', redis.call('HGET', META, 'seq'), redis.call('LRANGE', HISTORY, 0, -1)}
