-- ARGV[4]: member id; ARGV[5]: room_closed frame for an owner-offline destruction. Returns
-- {'ok', the creator's hold if the room was destroyed (see destroy)}.
if not alive_until() then return {'refused', 'room_not_found'} end
return {'ok', remove_member(ARGV[4], ARGV[5], 'left') or ''}
