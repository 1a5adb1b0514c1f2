-- ARGV[4]: resume token hash; ARGV[5]: session; ARGV[6]: how far ahead a live member's deadline
-- lies (ms).
local exp = alive_until()
if not exp then return {'refused', 'room_not_found'} end
local id = redis.call('HGET', RESUME, ARGV[4])
local member = id and redis.call('HGET', MEMBERS, id)
if not member then return {'refused', 'unauthorized'} end
local st = split(redis.call('HGET', STATE, id))
local deadline = NOW + tonumber(ARGV[6])
redis.call('HSET', STATE, id, ARGV[5] .. '\n' .. st[2] .. '\n' .. st[3])
move_alive(id, st[1], ARGV[5], deadline, exp)
publish_replaced(id, ARGV[5])
return {'ok', member, view(), deadline}
