-- KEYS[1]: the deadline schedule. ARGV[1]: room; ARGV[2]: the lease it was claimed with;
-- ARGV[3]: its next deadline, or 'gone'. An entry moved earlier meanwhile stays earlier.
if ARGV[3] == 'gone' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
local current = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not current then return 0 end
if tonumber(current) == tonumber(ARGV[2]) or tonumber(ARGV[3]) < tonumber(current) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1
