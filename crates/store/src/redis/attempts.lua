-- Password attempts, per client and over every client, each "count\nwindow end".
-- ARGV[4]: client; ARGV[5]: the every-client key (store::EVERY_CLIENT); ARGV[6]: 'reserve'
-- (ARGV[7]: the client's limit, ARGV[8]: the room's, ARGV[9]: window in ms; takes one attempt
-- from both counts and returns {'ok', 1}, or, when either is full, {'ok', 0, ms left of its
-- window}) or 'refund' (gives one back to both).
local exp = alive_until()
if not exp then return {'refused', 'room_not_found'} end
local keys = {ARGV[4], ARGV[5]}
local counts, ends = {}, {}
for i, key in ipairs(keys) do
  local entry = split(redis.call('HGET', ATTEMPTS, key))
  if entry[2] and tonumber(entry[2]) > NOW then
    counts[i], ends[i] = tonumber(entry[1]), tonumber(entry[2])
  else
    counts[i], ends[i] = 0, 0
  end
end
local function write(delta)
  for i, key in ipairs(keys) do
    if ends[i] == 0 then ends[i] = NOW + tonumber(ARGV[9] or 0) end
    local count = math.max(0, counts[i] + delta)
    redis.call('HSET', ATTEMPTS, key, tostring(count) .. '\n' .. string.format('%d', ends[i]))
  end
  expire_with_room(exp, ATTEMPTS)
end
if ARGV[6] == 'refund' then
  if counts[1] > 0 or counts[2] > 0 then write(-1) end
  return {'ok', 1}
end
for i, limit in ipairs({tonumber(ARGV[7]), tonumber(ARGV[8])}) do
  if counts[i] >= limit then return {'ok', 0, ends[i] - NOW} end
end
write(1)
return {'ok', 1}
