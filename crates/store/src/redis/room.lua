-- The room's snapshot and latest message id.
if not alive_until() then return {'refused', 'room_not_found'} end
return {'ok', view(), redis.call('HGET', META, 'seq')}
