-- KEYS[1]: the deadline schedule. ARGV[1]: the lease the rooms were claimed with; then pairs
-- of a room and its next deadline, or 'gone'. An entry moved earlier meanwhile stays earlier.
local lease = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  local room, next = ARGV[i], ARGV[i + 1]
  if next == 'gone' then
    redis.call('ZREM', KEYS[1], room)
  else
    local current = tonumber(redis.call('ZSCORE', KEYS[1], room))
    if current and (current == lease or tonumber(next) < current) then
      redis.call('ZADD', KEYS[1], next, room)
    end
  end
end
return 0
