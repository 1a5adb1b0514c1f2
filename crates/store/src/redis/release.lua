-- ARGV[4]: member id; ARGV[5]: room_closed frame for an owner-offline destruction.
if not alive_until() then return {'refused', 'room_not_found'} end
remove_member(ARGV[4], ARGV[5])
return {'ok'}
