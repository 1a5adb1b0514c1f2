-- An owner's change. ARGV[4]: 'member' or 'token' (who asks); ARGV[5]: its member id or owner
-- token hash; ARGV[6]: 'kick', 'settings' or 'handover'; ARGV[7]: the member kicked or made
-- owner; ARGV[8]: locked ('', '0', '1'); ARGV[9]: the new expiry ('' or ms). Returns
-- {'ok', view, the creator's hold} (the hold's end moves with the room's, see redis.rs).
local exp = alive_until()
if not exp then return {'refused', 'room_not_found'} end
local owner_id = redis.call('HGET', META, 'owner_id')
local by_owner
if ARGV[4] == 'member' then
  by_owner = ARGV[5] == owner_id
else
  by_owner = ARGV[5] == redis.call('HGET', META, 'owner_token')
end
if not by_owner then return {'refused', 'forbidden'} end
local what, target = ARGV[6], ARGV[7]
if what == 'kick' or what == 'handover' then
  if target == owner_id then return {'refused', 'forbidden'} end
  if redis.call('HEXISTS', MEMBERS, target) == 0 then return {'refused', 'not_found'} end
end
if what == 'kick' then
  -- STATE: session, resume token hash, folded name, client key.
  local st = split(redis.call('HGET', STATE, target))
  redis.call('HSET', BANS, 'n:' .. st[3], '1')
  if st[4] then redis.call('HSET', BANS, 'c:' .. st[4], '1') end
  expire_with_room(exp, BANS)
  remove_member(target, '', 'kicked')
elseif what == 'settings' then
  if ARGV[8] ~= '' then redis.call('HSET', META, 'locked', ARGV[8]) end
  if ARGV[9] ~= '' then
    exp = ARGV[9]
    redis.call('HSET', META, 'expires_at', exp)
    expire_with_room(exp, META, MEMBERS, STATE, NAMES, RESUME, ALIVE, HISTORY, RATE, TICKETS,
      ATTEMPTS, TICKET_EXP, CIDS, BANS)
  end
  publish_room()
else
  -- Handover: the records say who is owner, the meta names it (its name is the one reserved),
  -- and no owner token works until the new owner's connection sets its own (owner_token.lua).
  local old = redis.call('HGET', META, 'owner_member')
  if old then
    local record = cjson.decode(redis.call('HGET', MEMBERS, old))
    record.role = 'member'
    redis.call('HSET', MEMBERS, old, cjson.encode(record))
  end
  local record = cjson.decode(redis.call('HGET', MEMBERS, target))
  record.role = 'owner'
  redis.call('HSET', MEMBERS, target, cjson.encode(record))
  local fold = split(redis.call('HGET', STATE, target))[3]
  redis.call('HSET', META, 'owner_id', target, 'owner_member', target, 'owner_name',
    record.display_name, 'owner_fold', fold, 'owner_token', '', 'owner_pending', '1')
  redis.call('HDEL', META, 'owner_away_until')
  publish_room()
end
return {'ok', view(), redis.call('HGET', META, 'hold') or ''}
