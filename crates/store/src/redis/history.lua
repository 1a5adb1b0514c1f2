-- ARGV[4]: history limit; ARGV[5]: after (an id); ARGV[6]: at most this many messages.
-- Reads only what is asked: ids in a room's history are contiguous (1, 2, 3, ...; append.lua
-- assigns and pushes them in one step), so the list index of id i is i - seq - 1 from the end.
-- Returns the room's latest id, the first id still kept, and the messages after `after`.
if not alive_until() then return {'refused', 'room_not_found'} end
local seq = tonumber(redis.call('HGET', META, 'seq') or '0')
local kept = math.min(redis.call('LLEN', HISTORY), tonumber(ARGV[4]))
local first = seq - kept + 1
local from = math.max(tonumber(ARGV[5]) + 1, first)
local to = math.min(from + tonumber(ARGV[6]) - 1, seq)
if from > to then return {'ok', seq, first, {}} end
return {'ok', seq, first, redis.call('LRANGE', HISTORY, from - seq - 1, to - seq - 1)}
