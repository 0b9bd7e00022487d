-- Remove one camera record, its indexes and its credentials, atomically.
-- KEYS: 1 record, 2 all-ids set, 3 address map, 4 version counter, 5 credential key,
--       6 identity map
-- ARGV: 1 prefix, 2 id, 3 audit stream max length, 4.. audit entry field/value pairs
-- Returns the new registry version, or 0 when there was no such camera.
local prefix, id = ARGV[1], ARGV[2]
local old = redis.call('GET', KEYS[1])
if not old then return 0 end
local o = cjson.decode(old)
local function idx(field, value)
  return prefix .. ':idx:' .. field .. ':' .. value
end
redis.call('SREM', idx('network', o.network), id)
redis.call('SREM', idx('status', o.status), id)
redis.call('SREM', idx('category', o.category), id)
if o.department ~= '' then redis.call('SREM', idx('department', o.department), id) end
local addr = o.network .. '|' .. o.address
if redis.call('HGET', KEYS[3], addr) == id then redis.call('HDEL', KEYS[3], addr) end
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
local version = redis.call('INCR', KEYS[4])
redis.call('HINCRBY', prefix .. ':netversion', o.network, 1)
if #ARGV > 3 then
  redis.call('XADD', prefix .. ':audit', 'MAXLEN', '~', ARGV[3], '*', 'version', version, unpack(ARGV, 4))
end
redis.call('PUBLISH', prefix .. ':events', 'version ' .. version)
return version
