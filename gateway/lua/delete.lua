-- Remove one camera record, its indexes, its credentials and the fingerprint of the credentials
-- that last read it (hash <prefix>:credfp:<network>, credfp.lua), atomically.
-- KEYS: 1 record, 2 all-ids set, 3 site map, 4 version counter, 5 credential key,
--       6 identity map, 7 claims (id -> the site and identities the record claimed)
-- ARGV: 1 prefix, 2 id, 3 expected audit chain head, 4 the head after the entry,
--       5 writer id (turn claim), 6.. the sealed audit entry's field/value pairs (none: no entry)
-- Returns the new registry version, 0 when there was no such camera, or the error
-- `HEAD <current chain head>` / `WAIT <head>` (nothing changed; see audit_batch.lua).
local prefix, id = ARGV[1], ARGV[2]
local old = redis.call('GET', KEYS[1])
if not old then return 0 end
local audited = #ARGV > 5
if audited then
  local turn = prefix .. ':audit:turn'
  local head = redis.call('GET', prefix .. ':audit:head') or ('0 ' .. string.rep('0', 64))
  local claim = redis.call('GET', turn)
  if claim == ARGV[5] then
    redis.call('DEL', turn)
  elseif claim then
    return redis.error_reply('WAIT ' .. head)
  end
  if head ~= ARGV[3] then
    redis.call('SET', turn, ARGV[5], 'NX', 'PX', 500)
    return redis.error_reply('HEAD ' .. head)
  end
end
local o = cjson.decode(old)
local function idx(field, value)
  return prefix .. ':idx:' .. field .. ':' .. value
end
redis.call('SREM', idx('network', o.network), id)
redis.call('ZREM', prefix .. ':geo:' .. o.network, id)
redis.call('SREM', idx('status', o.status), id)
redis.call('SREM', idx('category', o.category), id)
if o.department ~= '' then redis.call('SREM', idx('department', o.department), id) end
-- What the record claimed (upsert.lua remembers it), then what a record written before claims
-- were remembered held: its bare address and identities.
local claimed = redis.call('HGET', KEYS[7], id)
if claimed then
  local c = cjson.decode(claimed)
  if c.site ~= '' and redis.call('HGET', KEYS[3], c.site) == id then
    redis.call('HDEL', KEYS[3], c.site)
  end
  for _, key in ipairs(c.idents) do
    if redis.call('HGET', KEYS[6], key) == id then redis.call('HDEL', KEYS[6], key) end
  end
  redis.call('HDEL', KEYS[7], id)
end
if type(o.address) == 'string' then
  local addr = o.network .. '|' .. o.address
  if redis.call('HGET', KEYS[3], addr) == id then redis.call('HDEL', KEYS[3], addr) end
end
if type(o.device) == 'table' and type(o.device.ref) == 'string' then
  local key = o.network .. '|edge|' .. o.device.ref
  if redis.call('HGET', KEYS[6], key) == id then redis.call('HDEL', KEYS[6], key) end
end
if type(o.onvif) == 'table' and type(o.onvif.endpoint_reference) == 'string' then
  local key = o.network .. '|ref|' .. o.onvif.endpoint_reference
  if redis.call('HGET', KEYS[6], key) == id then redis.call('HDEL', KEYS[6], key) end
end
if type(o.serial) == 'string' and type(o.mac) == 'string' then
  local key = o.network .. '|hw|' .. o.serial .. '|' .. o.mac
  if redis.call('HGET', KEYS[6], key) == id then redis.call('HDEL', KEYS[6], key) end
end
redis.call('SREM', KEYS[2], id)
redis.call('DEL', KEYS[1], KEYS[5])
redis.call('HDEL', prefix .. ':credfp:' .. o.network, id)
local version = redis.call('INCR', KEYS[4])
redis.call('HINCRBY', prefix .. ':netversion', o.network, 1)
redis.call('XADD', prefix .. ':changes', 'MAXLEN', '~', 100000, '*', 'v', version, 'id', id)
if audited then
  redis.call('XADD', prefix .. ':audit', '*', unpack(ARGV, 6))
  redis.call('SET', prefix .. ':audit:head', ARGV[4])
end
redis.call('PUBLISH', prefix .. ':events', 'version ' .. version)
return version
