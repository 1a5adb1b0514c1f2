-- ARGV[4]: ticket hash; ARGV[5]: "expires_at\nclient\ngrant json"; ARGV[6]: most outstanding
-- tickets in the room; ARGV[7]: most outstanding tickets of one client in the room.
-- Prunes a few expired tickets by expiry order, never reading the live ones: O(log n) each.
local exp = alive_until()
if not exp then return {'refused', 'room_not_found'} end
for _, hash in ipairs(redis.call('ZRANGEBYSCORE', TICKET_EXP, '-inf', NOW, 'LIMIT', 0, 16)) do
  forget_ticket(hash)
end
local parts = split(ARGV[5])
local grant = cjson.decode(parts[3])
-- A join ticket (not the owner's, not a resume) for a barred client or name, or into a locked
-- room, would only be refused when redeemed: refuse it now.
if grant.role ~= 'owner' and not grant.resume then
  if barred(parts[2], grant.fold) then return {'refused', 'banned'} end
  if redis.call('HGET', META, 'locked') == '1' then return {'refused', 'room_locked'} end
end
local field = 'c:' .. parts[2]
if redis.call('ZCARD', TICKET_EXP) >= tonumber(ARGV[6])
  or tonumber(redis.call('HGET', TICKETS, field) or '0') >= tonumber(ARGV[7]) then
  return {'refused', 'rate_limited'}
end
redis.call('HSET', TICKETS, ARGV[4], ARGV[5])
redis.call('HINCRBY', TICKETS, field, 1)
redis.call('ZADD', TICKET_EXP, tonumber(parts[1]), ARGV[4])
expire_with_room(exp, TICKETS, TICKET_EXP)
return {'ok'}
