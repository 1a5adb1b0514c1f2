-- ARGV[4]: expires_at; ARGV[5..]: the meta's field/value pairs.
redis.call('HSET', META, unpack(ARGV, 5))
redis.call('PEXPIREAT', META, ARGV[4])
return 'ok'
