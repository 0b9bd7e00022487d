-- Append a batch of audit entries in one call (group commit: every request waiting on the
-- batch answers only after its entry is in the stream).
-- KEYS: 1 the audit stream
-- ARGV: 1 approximate max length, then per entry: N, then N field/value strings
local i, n = 2, #ARGV
while i <= n do
  local count = tonumber(ARGV[i])
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, i + 1, i + count))
  i = i + count + 1
end
return 1
