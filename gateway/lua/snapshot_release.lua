-- Release the fetch lock only if we still hold it, publishing the frame first (if any).
-- KEYS: 1 published frame, 2 lock; ARGV: 1 owner, 2 frame ('' = none), 3 frame lifetime (ms)
if ARGV[2] ~= '' then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
