-- ARGV[4]: 'ticket' or 'name'; ARGV[5]: ticket hash or display name; ARGV[6]: folded name;
-- ARGV[7]: new member id; ARGV[8]: resume token hash; ARGV[9]: session;
-- ARGV[10]: how far ahead a live member's deadline lies (ms); ARGV[11], ARGV[12]: new members
-- the room takes per second, and its burst; ARGV[13]: the client's key.
local exp = alive_until()
if not exp then return {'refused', 'room_not_found'} end
-- The room's join bucket (GCRA, as append.lua's), checked before a ticket is spent and
-- counted only for a new member.
local join_interval = 1000 / tonumber(ARGV[11])
local join_full_at = math.max(tonumber(redis.call('HGET', META, 'join_rate')) or 0, NOW) + join_interval
if join_full_at - NOW > join_interval * tonumber(ARGV[12]) then return {'refused', 'room_busy'} end
local name, fold, role
if ARGV[4] == 'ticket' then
  local ticket = forget_ticket(ARGV[5])
  if not ticket then return {'refused', 'unauthorized'} end
  local parts = split(ticket)
  if tonumber(parts[1]) <= NOW then return {'refused', 'unauthorized'} end
  local grant = cjson.decode(parts[3])
  if grant.resume then return {'refused', 'unauthorized'} end
  name, fold, role = grant.display_name, grant.fold, grant.role
else
  if redis.call('HEXISTS', META, 'password_hash') == 1 then return {'refused', 'password_required'} end
  name, fold, role = ARGV[5], ARGV[6], 'member'
end
local resume, session, deadline = ARGV[8], ARGV[9], NOW + tonumber(ARGV[10])
if role == 'owner' then
  local owner = redis.call('HGET', META, 'owner_member')
  if owner then
    local st = split(redis.call('HGET', STATE, owner))
    redis.call('HDEL', RESUME, st[2])
    redis.call('HSET', STATE, owner, session .. '\n' .. resume .. '\n' .. st[3] .. '\n' .. ARGV[13])
    redis.call('HSET', RESUME, resume, owner)
    -- The HDEL may have emptied (so deleted) the resume key: the new one dies with the room.
    expire_with_room(exp, RESUME)
    move_alive(owner, st[1], session, deadline, exp)
    publish_replaced(owner, session)
    owner_back(owner)
    return {'ok', redis.call('HGET', MEMBERS, owner), view(), deadline}
  end
  name, fold = redis.call('HGET', META, 'owner_name'), redis.call('HGET', META, 'owner_fold')
else
  if barred(ARGV[13], fold) then return {'refused', 'banned'} end
  if redis.call('HGET', META, 'locked') == '1' then return {'refused', 'room_locked'} end
  if fold == redis.call('HGET', META, 'owner_fold') or redis.call('HEXISTS', NAMES, fold) == 1 then
    return {'refused', 'name_taken'}
  end
  local others = redis.call('HLEN', MEMBERS) - redis.call('HEXISTS', META, 'owner_member')
  if others + 1 >= tonumber(redis.call('HGET', META, 'max_users')) then return {'refused', 'room_full'} end
end
-- The owner's id is fixed at creation (rooms made before that: a new one).
local id = ARGV[7]
if role == 'owner' then id = redis.call('HGET', META, 'owner_id') or id end
local member = cjson.encode({id = id, display_name = name, role = role, connected_at = NOW})
redis.call('HSET', MEMBERS, id, member)
redis.call('HSET', STATE, id, session .. '\n' .. resume .. '\n' .. fold .. '\n' .. ARGV[13])
redis.call('HSET', RESUME, resume, id)
redis.call('HSET', NAMES, fold, id)
redis.call('ZADD', ALIVE, deadline, alive_entry(id, session))
if role == 'owner' then redis.call('HSET', META, 'owner_member', id) end
redis.call('HSET', META, 'join_rate', join_full_at)
expire_with_room(exp, MEMBERS, STATE, RESUME, NAMES, ALIVE)
publish_presence(member, 'user_online')
return {'ok', member, view(), deadline}
