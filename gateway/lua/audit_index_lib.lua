-- The audit stream's secondary indexes: functions that gateway/audit_index.py puts before the
-- scripts that keep them (audit_batch.lua, audit_index.lua, audit_index_trim.lua); not a script
-- of its own. Layout, every key named after the stream's key S (`<prefix>:audit`):
--   S:ix                 hash: `from` and `through`, stream ids; every entry with
--                        from < id <= through is in the indexes (the coverage)
--   S:ix:keys            set: the index keys that may hold members (trimmed by the archiver)
--   S:ix:<kind>:<sha1>   sorted set per value: kind actor, camera (the entry's `target`, which
--                        the camera filter matches) or network; sha1 hex of the value (fixed
--                        length, any text); members the entries' ids as fixed-width text
--                        (ix_lex), all scored 0, so lexical order is stream order
-- Every entry has a member in exactly three of them, an empty or missing value's included: the
-- same work for every entry (a hidden camera's refusal, filed under its network, and a
-- missing camera's, under none, must not be told apart by the time their audit takes).

local IX_KINDS = {{'actor', 'actor'}, {'target', 'camera'}, {'network', 'network'}}

-- `<ms>-<seq>` as 20 + 1 + 20 characters: lexical order is the ids' order.
local function ix_lex(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return string.rep('0', 20 - #ms) .. ms .. '-' .. string.rep('0', 20 - #seq) .. seq
end

-- Index one entry; `fields` is its flat field/value list (of a repeated field the last counts,
-- as when the gateway reads the entry).
local function ix_add(meta, keyset, id, fields)
  local values = {}
  for i = 1, #fields - 1, 2 do values[fields[i]] = fields[i + 1] end
  local member = ix_lex(id)
  for _, kind in ipairs(IX_KINDS) do
    local key = meta .. ':' .. kind[2] .. ':' .. redis.sha1hex(values[kind[1]] or '')
    redis.call('ZADD', key, 0, member)
    redis.call('SADD', keyset, key)
  end
end

-- The coverage; none yet (the indexes are new): it starts, empty, at the stream's last entry,
-- and older entries are left to the backfill (audit_index.lua) and, until then, to the scan.
local function ix_coverage(stream, meta)
  local c = redis.call('HMGET', meta, 'from', 'through')
  if c[1] and c[2] then return c[1], c[2] end
  local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
  local at = last and last[1] or '0-0'
  redis.call('HSET', meta, 'from', at, 'through', at)
  return at, at
end

-- Index up to `count` entries after `through` (appended by a script that does not index, e.g.
-- the registry's upsert.lua and delete.lua) and move `through` past them. Returns whether the
-- stream's end was reached, and how many were indexed.
local function ix_forward(stream, meta, keyset, through, count)
  if count <= 0 then return false, 0 end
  local rows = redis.call('XRANGE', stream, '(' .. through, '+', 'COUNT', count)
  for _, row in ipairs(rows) do
    ix_add(meta, keyset, row[1], row[2])
    through = row[1]
  end
  if #rows > 0 then redis.call('HSET', meta, 'through', through) end
  return #rows < count, #rows
end
