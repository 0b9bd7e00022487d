-- Write one camera record and keep every index true, atomically.
-- KEYS: 1 record, 2 all-ids set, 3 site map (where a camera answers -> id), 4 version
--       counter, 5 credential key, 6 identity map (adapter ref / endpoint reference /
--       serial+MAC -> id), 7 claims (id -> what the record claimed: {site, idents})
-- ARGV: 1 prefix, 2 id, 3 record json, 4 mode (create|update), 5 expected rev ('' = any),
--       6 network, 7 status, 8 category, 9 department, 10 site key ('' = address withheld),
--       11 credential action ('' keep | set | clear), 12 sealed credential,
--       13 claims json {"idents": [...], "takeover": bool, "fence": [counter key, value],
--          "history": [retention ms, max entries], "lifecycle": state, "actor": who,
--          "geo": [lon, lat] or absent (the GEO index <prefix>:geo:<network>: `near` queries)}
--          (gateway/identity.py computes the claims; a fence is carried by writes made under
--          a lease, gateway/lease.py; with "history", a change of status is added to
--          <prefix>:history:status:<network>; a change of lifecycle, with the actor, to the
--          list <prefix>:lifecycle:<id>),
--       14 expected audit chain head, 15 the head after the entry, 16 writer id (turn claim),
--       17.. the sealed audit entry's field/value pairs (none: no entry, 14 to 16 unused)
-- Returns the new registry version, or an error: EXISTS, NOTFOUND, CONFLICT, NETWORK (a record's
-- network never changes), ADDRESS <holder>, IDENTITY <holder>, FENCE <current> (the writer's
-- lease has passed to another holder since it was taken), HEAD <current chain head> (the
-- entry was sealed after another head: the gateway seals again and retries), WAIT <head>
-- (another writer has the chain's next turn; retry in a moment) (see audit_batch.lua).
-- Every check comes before the first write, the chain head last: a refused script changed
-- nothing (but the turn claim), and a change is never written without its entry.
-- Besides the registry version, each network has its own (hash <prefix>:netversion), so that what
-- a caller granted some networks sees changes only when those networks change.
local prefix, id, mode = ARGV[1], ARGV[2], ARGV[4]
local audited = #ARGV > 16
local turn = prefix .. ':audit:turn'
if audited then
  local claim = redis.call('GET', turn)
  if claim == ARGV[16] then
    redis.call('DEL', turn)
  elseif claim then
    local head = redis.call('GET', prefix .. ':audit:head') or ('0 ' .. string.rep('0', 64))
    return redis.error_reply('WAIT ' .. head)
  end
end
local claims = cjson.decode(ARGV[13])
if claims.fence then
  local current = redis.call('GET', claims.fence[1]) or '0'
  if current ~= tostring(claims.fence[2]) then return redis.error_reply('FENCE ' .. current) end
end
local old = redis.call('GET', KEYS[1])
if old and mode == 'create' then return redis.error_reply('EXISTS') end
if (not old) and mode == 'update' then return redis.error_reply('NOTFOUND') end

local o = old and cjson.decode(old)
if o then
  if ARGV[5] ~= '' and tostring(o.rev) ~= ARGV[5] then return redis.error_reply('CONFLICT') end
  if o.network ~= ARGV[6] then return redis.error_reply('NETWORK') end
end

-- What the record claimed before: as remembered, or (a record written before claims were
-- remembered) its bare address and the identities it held then.
local function legacy(rec)
  local out = {}
  if type(rec.device) == 'table' and type(rec.device.ref) == 'string' then
    out[#out + 1] = rec.network .. '|edge|' .. rec.device.ref
  end
  if type(rec.onvif) == 'table' and type(rec.onvif.endpoint_reference) == 'string' then
    out[#out + 1] = rec.network .. '|ref|' .. rec.onvif.endpoint_reference
  end
  if type(rec.serial) == 'string' and type(rec.mac) == 'string' then
    out[#out + 1] = rec.network .. '|hw|' .. rec.serial .. '|' .. rec.mac
  end
  local site = type(rec.address) == 'string' and (rec.network .. '|' .. rec.address) or ''
  return {site = site, idents = out}
end
local prev = redis.call('HGET', KEYS[7], id)
prev = (prev and cjson.decode(prev)) or (o and legacy(o)) or {site = '', idents = {}}

-- One camera per site. A create, or a camera that moved, claims its site (a discovery write
-- may take it over from a device that no longer answers there); a record that keeps its site
-- while another camera holds it (it was displaced) keeps its place without the key.
local site = ARGV[10] ~= '' and ARGV[10] or nil
local holder = site and redis.call('HGET', KEYS[3], site)
local claim_site = site
if holder and holder ~= id then
  if site == prev.site then
    claim_site = nil
  elseif not claims.takeover then
    return redis.error_reply('ADDRESS ' .. holder)
  end
end

local new_idents = claims.idents
for _, key in ipairs(new_idents) do
  local other = redis.call('HGET', KEYS[6], key)
  if other and other ~= id then return redis.error_reply('IDENTITY ' .. other) end
end

local function idx(field, value)
  return prefix .. ':idx:' .. field .. ':' .. value
end

if audited then
  local head = redis.call('GET', prefix .. ':audit:head') or ('0 ' .. string.rep('0', 64))
  if head ~= ARGV[14] then
    redis.call('SET', turn, ARGV[16], 'NX', 'PX', 500)
    return redis.error_reply('HEAD ' .. head)
  end
end

if o then
  redis.call('SREM', idx('network', o.network), id)
  redis.call('SREM', idx('status', o.status), id)
  redis.call('SREM', idx('category', o.category), id)
  if o.department ~= '' then redis.call('SREM', idx('department', o.department), id) end
end
if prev.site ~= '' and prev.site ~= site and redis.call('HGET', KEYS[3], prev.site) == id then
  redis.call('HDEL', KEYS[3], prev.site)
end
for _, key in ipairs(prev.idents) do
  if redis.call('HGET', KEYS[6], key) == id then redis.call('HDEL', KEYS[6], key) end
end

redis.call('SET', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], id)
redis.call('SADD', idx('network', ARGV[6]), id)
redis.call('SADD', idx('status', ARGV[7]), id)
redis.call('SADD', idx('category', ARGV[8]), id)
if ARGV[9] ~= '' then redis.call('SADD', idx('department', ARGV[9]), id) end
if claim_site then redis.call('HSET', KEYS[3], claim_site, id) end
if claims.geo then
  redis.call('GEOADD', prefix .. ':geo:' .. ARGV[6], claims.geo[1], claims.geo[2], id)
else
  redis.call('ZREM', prefix .. ':geo:' .. ARGV[6], id)
end
for _, key in ipairs(new_idents) do redis.call('HSET', KEYS[6], key, id) end
redis.call('HSET', KEYS[7], id, cjson.encode({site = site or '', idents = new_idents}))
if ARGV[11] == 'set' then redis.call('SET', KEYS[5], ARGV[12]) end
if ARGV[11] == 'clear' then redis.call('DEL', KEYS[5]) end

-- The status history: one entry per change (a create is a change from nothing), trimmed by
-- age (MINID, server time) and by count. `at` is the record's updated_at (the writer's clock).
if claims.history and ((not o) or o.status ~= ARGV[7]) then
  local rec = cjson.decode(ARGV[3])
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local hkey = prefix .. ':history:status:' .. ARGV[6]
  local err = type(rec.last_error) == 'string' and rec.last_error or ''
  redis.call('XADD', hkey, 'MINID', '~', tostring(now_ms - claims.history[1]), '*',
    'id', id, 'from', o and o.status or '', 'to', ARGV[7], 'at', rec.updated_at, 'error', err)
  redis.call('XTRIM', hkey, 'MAXLEN', '~', claims.history[2])
end
-- Lifecycle changes are few (a project's steps): each camera keeps its own, newest first, with
-- who made them (the newest 1,000; kept after a delete, for the auditors).
local lifecycle_was = o and (o.lifecycle or 'in-service') or ''
if claims.lifecycle and claims.lifecycle ~= lifecycle_was then
  local rec = cjson.decode(ARGV[3])
  local lkey = prefix .. ':lifecycle:' .. id
  redis.call('LPUSH', lkey, cjson.encode({
    from = lifecycle_was, to = claims.lifecycle, at = rec.updated_at, actor = claims.actor or ''
  }))
  redis.call('LTRIM', lkey, 0, 999)
end

local version = redis.call('INCR', KEYS[4])
redis.call('HINCRBY', prefix .. ':netversion', ARGV[6], 1)
-- Which record each version changed, so that a catalog holding version N reads only the
-- records changed since (gateway/registry.py: Registry.changes_since).
redis.call('XADD', prefix .. ':changes', 'MAXLEN', '~', 100000, '*', 'v', version, 'id', id)
if audited then
  redis.call('XADD', prefix .. ':audit', '*', unpack(ARGV, 17))
  redis.call('SET', prefix .. ':audit:head', ARGV[15])
end
redis.call('PUBLISH', prefix .. ':events', 'version ' .. version)
return version
