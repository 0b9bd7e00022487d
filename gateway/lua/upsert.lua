-- Write one camera record and keep every index true, atomically.
-- KEYS: 1 record, 2 all-ids set, 3 address map, 4 version counter, 5 credential key,
--       6 identity map (endpoint reference / serial+MAC -> id)
-- ARGV: 1 prefix, 2 id, 3 record json, 4 mode (create|update), 5 expected rev ('' = any),
--       6 network, 7 status, 8 category, 9 department, 10 address,
--       11 credential action ('' keep | set | clear), 12 sealed credential,
--       13 audit stream max length, 14.. audit entry field/value pairs (none: no entry)
-- Returns the new registry version, or an error: EXISTS, NOTFOUND, CONFLICT, NETWORK (a record's
-- network never changes), ADDRESS <holder>, IDENTITY <holder>.
-- Besides the registry version, each network has its own (hash <prefix>:netversion), so that what
-- a caller granted some networks sees changes only when those networks change.
local prefix, id, mode = ARGV[1], ARGV[2], ARGV[4]
local old = redis.call('GET', KEYS[1])
if old and mode == 'create' then return redis.error_reply('EXISTS') end
if (not old) and mode == 'update' then return redis.error_reply('NOTFOUND') end

local addr = ARGV[6] .. '|' .. ARGV[10]
local holder = redis.call('HGET', KEYS[3], addr)
if holder and holder ~= id then return redis.error_reply('ADDRESS ' .. holder) end

local function idx(field, value)
  return prefix .. ':idx:' .. field .. ':' .. value
end

-- The identities a record claims: its WS-Discovery endpoint reference, and serial+MAC.
local function idents(rec)
  local out = {}
  if type(rec.onvif) == 'table' and type(rec.onvif.endpoint_reference) == 'string' then
    out[#out + 1] = rec.network .. '|ref|' .. rec.onvif.endpoint_reference
  end
  if type(rec.serial) == 'string' and type(rec.mac) == 'string' then
    out[#out + 1] = rec.network .. '|hw|' .. rec.serial .. '|' .. rec.mac
  end
  return out
end

local new_idents = idents(cjson.decode(ARGV[3]))
for _, key in ipairs(new_idents) do
  local other = redis.call('HGET', KEYS[6], key)
  if other and other ~= id then return redis.error_reply('IDENTITY ' .. other) end
end

if old then
  local o = cjson.decode(old)
  if ARGV[5] ~= '' and tostring(o.rev) ~= ARGV[5] then return redis.error_reply('CONFLICT') end
  if o.network ~= ARGV[6] then return redis.error_reply('NETWORK') end
  redis.call('SREM', idx('network', o.network), id)
  redis.call('SREM', idx('status', o.status), id)
  redis.call('SREM', idx('category', o.category), id)
  if o.department ~= '' then redis.call('SREM', idx('department', o.department), id) end
  local oldaddr = o.network .. '|' .. o.address
  if oldaddr ~= addr then redis.call('HDEL', KEYS[3], oldaddr) end
  for _, key in ipairs(idents(o)) do
    if redis.call('HGET', KEYS[6], key) == id then redis.call('HDEL', KEYS[6], key) end
  end
end

redis.call('SET', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], id)
redis.call('SADD', idx('network', ARGV[6]), id)
redis.call('SADD', idx('status', ARGV[7]), id)
redis.call('SADD', idx('category', ARGV[8]), id)
if ARGV[9] ~= '' then redis.call('SADD', idx('department', ARGV[9]), id) end
redis.call('HSET', KEYS[3], addr, id)
for _, key in ipairs(new_idents) do redis.call('HSET', KEYS[6], key, id) end
if ARGV[11] == 'set' then redis.call('SET', KEYS[5], ARGV[12]) end
if ARGV[11] == 'clear' then redis.call('DEL', KEYS[5]) end

local version = redis.call('INCR', KEYS[4])
redis.call('HINCRBY', prefix .. ':netversion', ARGV[6], 1)
if #ARGV > 13 then
  redis.call('XADD', prefix .. ':audit', 'MAXLEN', '~', ARGV[13], '*', 'version', version, unpack(ARGV, 14))
end
redis.call('PUBLISH', prefix .. ':events', 'version ' .. version)
return version
