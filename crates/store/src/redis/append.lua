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
redis.call('HSET', RATE, id, tostring(tokens - 1) .. '\n' .. ARGV[2])
local seq = redis.call('HINCRBY', META, 'seq', 1)
local message = ARGV[8] .. seq .. ARGV[9]
redis.call('RPUSH', HISTORY, message)
redis.call('LTRIM', HISTORY, -tonumber(ARGV[7]), -1)
redis.call('SPUBLISH', CHANNEL, message)
expire_with_room(exp, HISTORY, RATE)
return {'ok', seq}
