-- Fixed-window counters, many at once (group commit): each window expires on its own.
-- KEYS: the windows' counters (repeats allowed); ARGV: 1 window length in seconds
-- Returns each key's count after its increment, in order.
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, ARGV[1]) end
  out[i] = n
end
return out
