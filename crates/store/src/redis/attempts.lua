-- ARGV[4]: client; ARGV[5]: 'peek' (ARGV[6]: limit; returns 1 if attempts are left, else 0
-- and the milliseconds left of the window) or 'count' (ARGV[6]: window in ms).
local exp = alive_until()
if not exp then return {'refused', 'room_not_found'} end
local entry = split(redis.call('HGET', ATTEMPTS, ARGV[4]))
local count, ends = 0, 0
if entry[2] and tonumber(entry[2]) > NOW then count, ends = tonumber(entry[1]), tonumber(entry[2]) end
if ARGV[5] == 'peek' then
  if count < tonumber(ARGV[6]) then return {'ok', 1} end
  return {'ok', 0, ends - NOW}
end
if ends == 0 then ends = NOW + tonumber(ARGV[6]) end
redis.call('HSET', ATTEMPTS, ARGV[4], tostring(count + 1) .. '\n' .. string.format('%d', ends))
expire_with_room(exp, ATTEMPTS)
return {'ok', 1}
