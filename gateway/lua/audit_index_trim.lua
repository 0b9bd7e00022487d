-- Drop from some of the audit stream's indexes (audit_index_lib.lua, put before this script)
-- the ids below the stream's first entry (archived and trimmed), and the keys left empty from
-- the set of index keys; atomically, so a key an append just added to stays in the set.
-- KEYS: 1 the audit stream, 2 the set of index keys, 3.. index keys
-- Returns the number of ids dropped.
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
local dropped = 0
for i = 3, #KEYS do
  if first then
    dropped = dropped + redis.call('ZREMRANGEBYLEX', KEYS[i], '-', '(' .. ix_lex(first[1]))
  end
  if redis.call('ZCARD', KEYS[i]) == 0 then redis.call('SREM', KEYS[2], KEYS[i]) end
end
return dropped
