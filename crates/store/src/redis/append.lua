-- The hot path, so it stands alone (no prelude) and takes only the keys it touches:
-- KEYS: meta, members, history, rate, client_ids. ARGV[1]: room id; ARGV[2]:
-- now (ms); ARGV[3]: member id; ARGV[4]: rate per second; ARGV[5]: burst; ARGV[6]: history
-- limit; ARGV[7], ARGV[8]: the message frame's JSON before and after its id; ARGV[9]: most bytes
-- of history kept; ARGV[10], ARGV[11]: the room's rate per second and burst, every member
-- together; ARGV[12]: the message's client_id as its JSON string spells it, without the quotes
-- ('' for none); ARGV[13]: the id of the message this one answers ('' for none).
-- Every event of the conversation comes here: for an edit, a deletion or a reaction, ARGV[7] and
-- ARGV[8] are the event's JSON, ARGV[14] is '1' when only the owner may make it, and from
-- ARGV[15] on come the kept events it rewrites, three arguments each: its id, its JSON as the
-- caller read it, its JSON from now on.
-- Returns {'ok', id}; {'dup', the kept message} for a client_id its member already used in a
-- message history still holds (a retry: nothing is posted, nothing counted); {'changed'} when
-- the kept message is no longer what the caller read (it reads again and decides again).
local META, MEMBERS, HISTORY, RATE, CIDS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local NOW, id = tonumber(ARGV[2]), ARGV[3]
-- Every META field this script reads, in one call; those it changes go back in one HSET.
local meta = redis.call('HMGET', META, 'expires_at', 'msg_rate', 'seq', 'history_bytes', 'owner_id')
local exp = meta[1]
if not exp or tonumber(exp) <= NOW then return {'refused', 'room_not_found'} end
-- A member's rate field exists only while they are a member (remove_member deletes it), so
-- only their first message needs the members hash. The owner may post without being one (a
-- script with the owner token): its field then stays until the room ends.
local bucket = redis.call('HGET', RATE, id)
if not bucket and id ~= meta[5] and redis.call('HEXISTS', MEMBERS, id) == 0 then return {'refused', 'unauthorized'} end
-- CIDS maps "<member>\n<client_id>" to the id of the kept message that used it; a message that
-- leaves history takes its field with it. A message without a client_id does not touch it.
local last = tonumber(meta[3]) or 0
-- Ids in history are contiguous up to the last: the list index of id i (below 0: not kept).
local function index(i) return redis.call('LLEN', HISTORY) - 1 - (last - i) end
local cid = ARGV[12] ~= '' and (id .. '\n' .. ARGV[12]) or ''
if cid ~= '' then
  local earlier = tonumber(redis.call('HGET', CIDS, cid))
  local at = earlier and index(earlier)
  if at and at >= 0 then return {'dup', redis.call('LINDEX', HISTORY, at)} end
end
-- A reply answers an earlier message: one still kept must be a message, not another event.
if ARGV[13] ~= '' then
  local answered = tonumber(ARGV[13])
  if answered < 1 or answered > last then return {'refused', 'invalid_frame'} end
  local at = index(answered)
  if at >= 0 and string.sub(redis.call('LINDEX', HISTORY, at), 1, 19) ~= '{"type":"message","' then
    return {'refused', 'invalid_frame'}
  end
end
-- Compare and set: Rust read the kept events and decided the change; nothing may have come
-- between.
local rewrites = {}
for i = 15, #ARGV, 3 do
  local at = index(tonumber(ARGV[i]))
  if at < 0 or redis.call('LINDEX', HISTORY, at) ~= ARGV[i + 1] then return {'changed'} end
  rewrites[#rewrites + 1] = {at, ARGV[i + 1], ARGV[i + 2]}
end
if ARGV[14] == '1' and id ~= meta[5] then return {'refused', 'forbidden'} end
-- The token bucket as GCRA: the field holds the time (ms) at which the member's bucket is full
-- again; a message is allowed while that stays within `burst` intervals from now.
local interval = 1000 / tonumber(ARGV[4])
local full_at = math.max(tonumber(bucket) or 0, NOW) + interval
if full_at - NOW > interval * tonumber(ARGV[5]) then return {'refused', 'rate_limited'} end
-- The room's own bucket, the same way: a room costs at most its rate in fan-outs.
local room_interval = 1000 / tonumber(ARGV[10])
local room_full_at = math.max(tonumber(meta[2]) or 0, NOW) + room_interval
if room_full_at - NOW > room_interval * tonumber(ARGV[11]) then return {'refused', 'room_busy'} end
-- A room's expiry never changes: keys get it once, when created (a new field, or a list's first item).
if redis.call('HSET', RATE, id, full_at) == 1 then redis.call('PEXPIREAT', RATE, exp) end
local seq = last + 1
local message = ARGV[7] .. seq .. ARGV[8]
local bytes = (tonumber(meta[4]) or 0) + #message
for _, r in ipairs(rewrites) do
  redis.call('LSET', HISTORY, r[1], r[3])
  bytes = bytes + #r[3] - #r[2]
end
local kept, limit, max_bytes = redis.call('RPUSH', HISTORY, message), tonumber(ARGV[6]), tonumber(ARGV[9])
if kept == 1 then redis.call('PEXPIREAT', HISTORY, exp) end
-- CIDS has the room's expiry since its creation (create.lua).
if cid ~= '' then redis.call('HSET', CIDS, cid, seq) end
-- History is the newest `limit` messages that fit in `max_bytes` (the newest always kept);
-- META's history_bytes is the list's size. Nothing here can fail once a write is made (Redis
-- refuses a script for memory only before its first write), so ids never skip.
while kept > limit or (bytes > max_bytes and kept > 1) do
  local gone = redis.call('LPOP', HISTORY)
  bytes, kept = bytes - #gone, kept - 1
  -- Its client_id is forgotten with it. In the frame's JSON a quote inside a value is always
  -- escaped, so these keys, unescaped, are the frame's own fields. A plain search first: most
  -- messages of a script or a bot have none, and they must not pay for a pattern.
  local at = string.find(gone, '"client_id":"', 1, true)
  if at then
    local author = string.match(gone, '"member_id":"([^"]*)"')
    local said = string.match(gone, '^(.-)","timestamp":"', at + 13)
    if author and said then redis.call('HDEL', CIDS, author .. '\n' .. said) end
  end
end
redis.call('HSET', META, 'seq', seq, 'msg_rate', room_full_at, 'history_bytes', bytes)
redis.call('SPUBLISH', 'eph:{' .. ARGV[1] .. '}', message)
return {'ok', seq}
