-- Single flight across gateways: return the frame another gateway published, or claim the
-- fetch. KEYS: 1 published frame, 2 lock; ARGV: 1 owner, 2 lock lifetime (ms)
-- Returns {frame} when one is published, {false, 1} when claimed, {false, 0} when another holds it.
local frame = redis.call('GET', KEYS[1])
if frame then return {frame} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {false, 1} end
return {false, 0}
