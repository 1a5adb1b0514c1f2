-- ARGV[4]: a bearer token's hash. Returns the owner token's hash and the member it resumes.
if not alive_until() then return {'refused', 'room_not_found'} end
local id = redis.call('HGET', RESUME, ARGV[4])
local member = id and redis.call('HGET', MEMBERS, id)
return {'ok', redis.call('HGET', META, 'owner_token'), member or ''}
