-- ARGV[4]: expires_at; ARGV[5..]: the meta's field/value pairs.
redis.call('HSET', META, unpack(ARGV, 5))
redis.call('PEXPIREAT', META, ARGV[4])
-- The client_ids of kept messages (append.lua): made now, with the room's expiry and a field no
-- client_id can be, so it lives exactly as long as the room and a message never sets its expiry.
redis.call('HSET', CIDS, '', '')
redis.call('PEXPIREAT', CIDS, ARGV[4])
return 'ok'
