-- A lease on a network's scheduled work, with a fencing token (gateway/lease.py).
-- KEYS: 1 the lease ("holder fence", expires), 2 the fence counter (never expires)
-- ARGV: 1 op (acquire | renew | release), 2 holder id, 3 ttl ms, 4 fence (renew, release)
-- acquire: a free lease is taken with the next fence; the holder's own is extended. Returns
--          {fence, holder}: holder is this one if it holds the lease, else the other holder.
-- renew:   1 if `holder fence` still holds it (extended), else 0: the lease was lost.
-- release: 1 if it held it (now free), else 0.
local current = redis.call('GET', KEYS[1])
local op = ARGV[1]
if op == 'acquire' then
  if not current then
    local fence = redis.call('INCR', KEYS[2])
    redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. fence, 'PX', ARGV[3])
    return {fence, ARGV[2]}
  end
  local holder, fence = string.match(current, '^(%S+) (%d+)$')
  if holder == ARGV[2] then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
  end
  return {tonumber(fence), holder}
end
if current ~= ARGV[2] .. ' ' .. ARGV[4] then
  return 0
end
if op == 'renew' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
return 1
