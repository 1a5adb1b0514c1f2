-- ARGV[4]: ticket hash, ARGV[5]: "expires_at\ngrant json", ARGV[6]: most outstanding tickets.
local exp = alive_until()
if not exp then return {'refused', 'room_not_found'} end
local max = tonumber(ARGV[6])
if redis.call('HLEN', TICKETS) >= math.min(max, 64) then
  local all = redis.call('HGETALL', TICKETS)
  for i = 1, #all, 2 do
    if tonumber(split(all[i + 1])[1]) <= NOW then redis.call('HDEL', TICKETS, all[i]) end
  end
  if redis.call('HLEN', TICKETS) >= max then return {'refused', 'rate_limited'} end
end
redis.call('HSET', TICKETS, ARGV[4], ARGV[5])
expire_with_room(exp, TICKETS)
return {'ok'}
