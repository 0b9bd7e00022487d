-- Fixed-window counter: one round trip, and the window expires on its own.
-- KEYS: 1 the window's counter; ARGV: 1 window length in seconds
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
