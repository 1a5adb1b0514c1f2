-- ARGV[4]: member id; ARGV[5]: rate per second; ARGV[6]: burst; ARGV[7]: history limit;
-- ARGV[8], ARGV[9]: the message frame's JSON before and after its id.
local exp = alive_until()
if not exp then return {'refused', 'room_not_found'} end
local id = ARGV[4]
if redis.call('HEXISTS', MEMBERS, id) == 0 then return {'refused', 'unauthorized'} end
local rate, burst = tonumber(ARGV[5]), tonumber(ARGV[6])
local bucket = split(redis.call('HGET', RATE, id))
local tokens, at = burst, NOW
if bucket[2] then tokens, at = tonumber(bucket[1]), tonumber(bucket[2]) end
tokens = math.min(burst, tokens + math.max(0, NOW - at) * rate / 1000)
if tokens < 1 then
  redis.call('HSET', RATE, id, tostring(tokens) .. '\n' .. ARGV[2])
  return {'refused', 'rate_limited'}
end
-- A room's expiry never changes: keys get it once, when created (a new field, or a list's first item).
if redis.call('HSET', RATE, id, tostring(tokens - 1) .. '\n' .. ARGV[2]) == 1 then
  expire_with_room(exp, RATE)
end
local seq = redis.call('HINCRBY', META, 'seq', 1)
local message = ARGV[8] .. seq .. ARGV[9]
if redis.call('RPUSH', HISTORY, message) == 1 then expire_with_room(exp, HISTORY) end
redis.call('LTRIM', HISTORY, -tonumber(ARGV[7]), -1)
redis.call('SPUBLISH', CHANNEL, message)
return {'ok', seq}
