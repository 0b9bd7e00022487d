-- Append a batch of sealed audit entries in one call (group commit: every request waiting on
-- the batch answers only after its entry is in the stream), if the chain's head is still the
-- one the entries were sealed after.
-- Each entry goes into the stream's indexes too (audit_index_lib.lua, put before this script),
-- after the entries other scripts appended since the indexes' end (at most 256 per call).
-- KEYS: 1 the audit stream, 2 the chain head ("seq link" of the last entry), 3 the turn claim,
--       4 the indexes' coverage (`<stream>:ix`, also the prefix of the index keys), 5 the set
--       of index keys
-- ARGV: 1 expected head, 2 head after the batch, 3 writer id, then per entry one JSON array
--       of its field/value strings (seq, prev, the entry's fields, link: computed by the
--       gateway, whose key never reaches Redis)
-- Returns 1, or an error carrying the current head, nothing appended: `HEAD <head>` (sealed
-- after an old head: this writer now has the next turn) or `WAIT <head>` (another writer that
-- lost a race has the next turn; retry in a moment).
local head = redis.call('GET', KEYS[2]) or ('0 ' .. string.rep('0', 64))
local claim = redis.call('GET', KEYS[3])
if claim == ARGV[3] then
  redis.call('DEL', KEYS[3])
elseif claim then
  return redis.error_reply('WAIT ' .. head)
end
if head ~= ARGV[1] then
  redis.call('SET', KEYS[3], ARGV[3], 'NX', 'PX', 500)
  return redis.error_reply('HEAD ' .. head)
end
local _, through = ix_coverage(KEYS[1], KEYS[4])
local caught_up = ix_forward(KEYS[1], KEYS[4], KEYS[5], through, 256)
local last
for i = 4, #ARGV do
  local fields = cjson.decode(ARGV[i])
  last = redis.call('XADD', KEYS[1], '*', unpack(fields))
  ix_add(KEYS[4], KEYS[5], last, fields)
end
-- (not caught up: these entries are indexed, but the coverage ends before them until the rest
-- is, by the next call or the gateway's upkeep)
if caught_up and last then redis.call('HSET', KEYS[4], 'through', last) end
redis.call('SET', KEYS[2], ARGV[2])
return 1
