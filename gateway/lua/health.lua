-- A health round's writes for one network, many records in one call: each record's status,
-- last_seen, last_error, updated_at and rev, as upsert.lua would write them, without what a
-- probe never changes (site, identities, claims, location, lifecycle, credentials).
-- KEYS: 1 version counter (every other key is made from the prefix, as upsert.lua does)
-- ARGV: 1 prefix, 2 network, 3 fence json ([counter key, value] or '' for none),
--       4 history json ([retention ms, max entries] or '' for none), 5 the records' updated_at,
--       then per record 6 values: id, expected rev, record json (rev + 1), status, last_error,
--       the status the writer read with that rev
-- A record is the one the writer read when its JSON ends with that rev (`"rev":N}`: the
-- model's last field), so it is not decoded (a district's round writes thousands); one that
-- ends otherwise is decoded and compared.
-- Returns one reply per record, in order: the registry version it was written at, or 0 when it
-- was not (gone, changed meanwhile, or on another network: the next round writes it again);
-- or the error FENCE <current> (the round's lease has passed to another holder: nothing written).
local prefix, network = ARGV[1], ARGV[2]
if ARGV[3] ~= '' then
  local fence = cjson.decode(ARGV[3])
  local current = redis.call('GET', fence[1]) or '0'
  if current ~= tostring(fence[2]) then return redis.error_reply('FENCE ' .. current) end
end
local history = ARGV[4] ~= '' and cjson.decode(ARGV[4]) or nil
local now_ms = nil
local hkey = prefix .. ':history:status:' .. network
local out = {}
local version = nil
for at = 6, #ARGV, 6 do
  local id, rev, record, status, err = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4]
  local was = ARGV[at + 5]
  local key = prefix .. ':cam:' .. id
  local old = redis.call('GET', key)
  local same = false
  if old then
    local tail = '"rev":' .. rev .. '}'
    if string.sub(old, -#tail) == tail then
      same = true
    else
      local o = cjson.decode(old)
      same = tostring(o.rev) == rev and o.network == network
      was = o.status
    end
  end
  if not same then
    out[#out + 1] = 0
  else
    redis.call('SET', key, record)
    if was ~= status then
      redis.call('SREM', prefix .. ':idx:status:' .. was, id)
      redis.call('SADD', prefix .. ':idx:status:' .. status, id)
      if history then
        if not now_ms then
          local t = redis.call('TIME')
          now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        end
        redis.call('XADD', hkey, 'MINID', '~', tostring(now_ms - history[1]), '*',
          'id', id, 'from', was, 'to', status, 'at', ARGV[5], 'error', err)
      end
    end
    version = redis.call('INCR', KEYS[1])
    redis.call('HINCRBY', prefix .. ':netversion', network, 1)
    redis.call('XADD', prefix .. ':changes', 'MAXLEN', '~', 100000, '*', 'v', version, 'id', id)
    out[#out + 1] = version
  end
end
if history and now_ms then redis.call('XTRIM', hkey, 'MAXLEN', '~', history[2]) end
if version then redis.call('PUBLISH', prefix .. ':events', 'version ' .. version) end
return out
