-- Runs the room's due deadlines. ARGV[4]: room_closed frame for expiry; ARGV[5]: for an
-- owner-offline destruction; ARGV[6]: the presence grace (ms). Returns {'gone', the creator's hold (see destroy)} or {'next', the
-- room's next deadline}.
local exp = redis.call('HGET', META, 'expires_at')
if not exp then
  -- Redis already expired the room: whatever of it is left goes now (nothing about a room
  -- outlives it, even a key a write re-created), and its connections are told.
  return {'gone', destroy(ARGV[4])}
end
if tonumber(exp) <= NOW then
  return {'gone', destroy(ARGV[4])}
end
-- Every due entry goes. Its member goes too unless the member's current connection still has
-- an entry (one naming its session).
for _, entry in ipairs(redis.call('ZRANGEBYSCORE', ALIVE, '-inf', NOW)) do
  redis.call('ZREM', ALIVE, entry)
  local id = split(entry)[1]
  local session = split(redis.call('HGET', STATE, id))[1]
  local current = session and redis.call('ZSCORE', ALIVE, alive_entry(id, session))
  if not current then
    -- The owner of a room that ends with it is waited for longer: its owner grace from when
    -- its connection went, that is, past its presence grace, the rest of it.
    local m = redis.call('HMGET', META, 'owner_member', 'destroy_on_owner_offline', 'owner_away_until', 'owner_grace')
    local rest = tonumber(m[4] or '0') - tonumber(ARGV[6])
    if id == m[1] and m[2] == '1' and not m[3] and rest > 0 then
      local away_until = NOW + rest
      redis.call('HSET', META, 'owner_away_until', away_until)
      redis.call('ZADD', ALIVE, away_until, alive_entry(id, session))
      publish_room()
    else
      local hold = remove_member(id, ARGV[5], 'timeout')
      if hold then return {'gone', hold} end
    end
  end
end
local next = tonumber(exp)
local first = redis.call('ZRANGE', ALIVE, 0, 0, 'WITHSCORES')
if first[2] and tonumber(first[2]) < next then next = tonumber(first[2]) end
return {'next', next}
