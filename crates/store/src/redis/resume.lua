-- ARGV[4]: resume token hash, or a resume ticket's hash; ARGV[5]: session; ARGV[6]: how far
-- ahead a live member's deadline lies (ms); ARGV[7]: 'token' or 'ticket' (the ticket is used up
-- here, and stands for the resume token hash in its grant).
local exp = alive_until()
if not exp then return {'refused', 'room_not_found'} end
local token = ARGV[4]
if ARGV[7] == 'ticket' then
  local ticket = forget_ticket(ARGV[4])
  if not ticket then return {'refused', 'unauthorized'} end
  local parts = split(ticket)
  local grant = cjson.decode(parts[3])
  if tonumber(parts[1]) <= NOW or not grant.resume then return {'refused', 'unauthorized'} end
  token = grant.resume
end
local id = redis.call('HGET', RESUME, token)
local member = id and redis.call('HGET', MEMBERS, id)
if not member then return {'refused', 'unauthorized'} end
local st = split(redis.call('HGET', STATE, id))
local old_session = st[1]
local deadline = NOW + tonumber(ARGV[6])
st[1] = ARGV[5]
redis.call('HSET', STATE, id, table.concat(st, '\n'))
move_alive(id, old_session, ARGV[5], deadline, exp)
publish_replaced(id, ARGV[5])
owner_back(id)
return {'ok', member, view(), deadline}
