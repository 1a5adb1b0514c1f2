-- ARGV[4]: history limit. The last kept messages (oldest first) and the latest id.
if not alive_until() then return {'refused', 'room_not_found'} end
return {'ok', redis.call('HGET', META, 'seq'), redis.call('LRANGE', HISTORY, -tonumber(ARGV[4]), -1)}
