-- Remember which credentials last read each camera: their keyed fingerprint (never the
-- credentials), in the hash <prefix>:credfp:<network>, field = camera id. Only for cameras whose
-- record exists: a camera deleted since it was read (delete.lua removes its field) leaves none.
-- ARGV: 1 prefix, then (network, id, fingerprint) triples.
-- Returns, per triple, 1 if kept, 0 if the record is gone.
local prefix = ARGV[1]
local out = {}
for i = 2, #ARGV, 3 do
  local network, id, fp = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('EXISTS', prefix .. ':cam:' .. id) == 1 then
    redis.call('HSET', prefix .. ':credfp:' .. network, id, fp)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
