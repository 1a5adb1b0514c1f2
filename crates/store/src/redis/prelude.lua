-- Shared by every room script. KEYS are the room's keys (see room_keys in scripts.rs);
-- ARGV[1] is the room id, ARGV[2] now (ms), ARGV[3] now as an RFC 3339 timestamp.
local META, MEMBERS, STATE, NAMES, RESUME, ALIVE, HISTORY, RATE, TICKETS, ATTEMPTS, TICKET_EXP =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local CIDS, BANS = KEYS[12], KEYS[13]
local ROOM, NOW, TS = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local CHANNEL = 'eph:{' .. ROOM .. '}'

-- The room's expiry (a string), or nil once it has ended or passed its expiry.
local function alive_until()
  local exp = redis.call('HGET', META, 'expires_at')
  if not exp or tonumber(exp) <= NOW then return nil end
  return exp
end

-- Keys written by a script die with the room.
local function expire_with_room(exp, ...)
  for _, key in ipairs({...}) do redis.call('PEXPIREAT', key, exp) end
end

-- Splits "a\nb\nc" (names and tokens cannot hold control characters).
local function split(s)
  local parts = {}
  for part in string.gmatch(s or '', '[^\n]+') do parts[#parts + 1] = part end
  return parts
end

-- A member's entry in ALIVE names its current connection too, so a liveness refresh (one
-- ZADD XX in liveness.rs) moves only the deadlines of connections still current.
local function alive_entry(id, session) return id .. '\n' .. session end

-- Moves a member's liveness to its new connection. The ZREM may empty the set, which deletes
-- the key: the ZADD then makes a new one, which must die with the room like the old.
local function move_alive(id, old_session, session, deadline, exp)
  redis.call('ZREM', ALIVE, alive_entry(id, old_session))
  redis.call('ZADD', ALIVE, deadline, alive_entry(id, session))
  expire_with_room(exp, ALIVE)
end

-- A presence change as facts (Rust's PresenceNote; each instance makes the clients' frame from
-- it): the member's record as stored, the members now in the room, and when. reason: on
-- user_offline, 'left' or 'timeout' (nil on user_online).
local function publish_presence(member_json, event, reason)
  redis.call('SPUBLISH', CHANNEL, cjson.encode({
    type = 'presence', event = event, reason = reason, member = cjson.decode(member_json),
    online_count = redis.call('HLEN', MEMBERS), at = NOW }))
end

-- The room's state its owner changes, as facts (Rust's RoomNote, made into room_updated).
local function publish_room()
  local m = redis.call('HMGET', META, 'locked', 'expires_at', 'owner_id', 'owner_away_until')
  redis.call('SPUBLISH', CHANNEL, cjson.encode({
    type = 'room', locked = m[1] == '1', expires_at = tonumber(m[2]), owner_id = m[3] or '',
    owner_away_until = m[4] and tonumber(m[4]) or nil, at = NOW }))
end

-- A member's connection came (back): if it is the owner and the room was waiting for it, the
-- room no longer ends, and everyone is told.
local function owner_back(id)
  if redis.call('HGET', META, 'owner_member') == id and redis.call('HDEL', META, 'owner_away_until') == 1 then
    publish_room()
  end
end

-- Whether the owner barred this client key or folded name from the room.
local function barred(client, fold)
  return redis.call('HEXISTS', BANS, 'n:' .. fold) == 1
    or (client ~= '' and redis.call('HEXISTS', BANS, 'c:' .. client) == 1)
end

local function publish_replaced(member_id, session)
  redis.call('SPUBLISH', CHANNEL,
    '{"type":"replaced","member_id":"' .. member_id .. '","session":' .. session .. '}')
end

-- Tickets: TICKETS maps a ticket's hash to "expires_at\nclient\ngrant json" and 'c:' .. client
-- to how many that client holds; TICKET_EXP orders the hashes by expiry, so expired ones are
-- found without reading the others. Removes one ticket; returns its value, if it was there.
local function forget_ticket(hash)
  redis.call('ZREM', TICKET_EXP, hash)
  local value = redis.call('HGET', TICKETS, hash)
  if not value then return nil end
  redis.call('HDEL', TICKETS, hash)
  local field = 'c:' .. (split(value)[2] or '')
  if redis.call('HINCRBY', TICKETS, field, -1) <= 0 then redis.call('HDEL', TICKETS, field) end
  return value
end

-- Returns the creator's hold of the room ('' if none), for the caller to give back.
local function destroy(closed_json)
  local hold = redis.call('HGET', META, 'hold') or ''
  redis.call('DEL', META, MEMBERS, STATE, NAMES, RESUME, ALIVE, HISTORY, RATE, TICKETS, ATTEMPTS,
    TICKET_EXP, CIDS, BANS)
  redis.call('SPUBLISH', CHANNEL, closed_json)
  return hold
end

-- Removes a member and publishes user_offline; destroys the room (publishing closed_json) if
-- the member was its owner and the room says so. Returns the creator's hold if the room was
-- destroyed (see destroy), else false.
local function remove_member(id, closed_json, reason)
  local member = redis.call('HGET', MEMBERS, id)
  if not member then return false end
  local st = split(redis.call('HGET', STATE, id))
  redis.call('HDEL', MEMBERS, id)
  redis.call('HDEL', STATE, id)
  redis.call('HDEL', RATE, id)
  if st[1] then redis.call('ZREM', ALIVE, alive_entry(id, st[1])) end
  if st[2] then redis.call('HDEL', RESUME, st[2]) end
  if st[3] then redis.call('HDEL', NAMES, st[3]) end
  publish_presence(member, 'user_offline', reason)
  if redis.call('HGET', META, 'owner_member') == id then
    redis.call('HDEL', META, 'owner_member')
    if redis.call('HGET', META, 'destroy_on_owner_offline') == '1' then
      return destroy(closed_json)
    end
  end
  return false
end

-- The room as a snapshot: its meta fields and every member's record.
local function view()
  return {redis.call('HGETALL', META), redis.call('HVALS', MEMBERS)}
end
