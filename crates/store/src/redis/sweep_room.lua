-- Runs the room's due deadlines. ARGV[4]: room_closed frame for expiry; ARGV[5]: for an
-- owner-offline destruction. Returns {'gone'} or {'next', the room's next deadline}.
local exp = redis.call('HGET', META, 'expires_at')
if not exp then
  -- Redis already expired the keys: still tell the room's connections.
  redis.call('SPUBLISH', CHANNEL, ARGV[4])
  return {'gone'}
end
if tonumber(exp) <= NOW then
  destroy(ARGV[4])
  return {'gone'}
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', ALIVE, '-inf', NOW)) do
  if remove_member(id, ARGV[5]) then return {'gone'} end
end
local next = tonumber(exp)
local first = redis.call('ZRANGE', ALIVE, 0, 0, 'WITHSCORES')
if first[2] and tonumber(first[2]) < next then next = tonumber(first[2]) end
return {'next', next}
