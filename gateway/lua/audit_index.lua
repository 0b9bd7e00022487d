-- One step of keeping the audit stream's indexes whole (audit_index_lib.lua, put before this
-- script): index the entries after the coverage's end (appended by scripts that do not index
-- them) and, backwards, those before its start (written before the indexes existed), at most
-- ARGV[1] and ARGV[2] of each, and move the coverage over them.
-- KEYS: 1 the audit stream, 2 the coverage (`<stream>:ix`), 3 the set of index keys
-- ARGV: 1 entries to index after the end at most, 2 before the start at most
-- Returns {indexed after, indexed before, 1 if the end was reached, 1 if the start was}.
local from, through = ix_coverage(KEYS[1], KEYS[2])
local reached_end, forward = ix_forward(KEYS[1], KEYS[2], KEYS[3], through, tonumber(ARGV[1]))
local count, backward = tonumber(ARGV[2]), 0
if from ~= '0-0' and count > 0 then
  -- `from` itself is not indexed (the coverage starts after it): from it downwards, and the
  -- entry after the last one indexed (if any) is the new, exclusive, start.
  local rows = redis.call('XREVRANGE', KEYS[1], from, '-', 'COUNT', count + 1)
  backward = math.min(#rows, count)
  for i = 1, backward do ix_add(KEYS[2], KEYS[3], rows[i][1], rows[i][2]) end
  from = rows[count + 1] and rows[count + 1][1] or '0-0'
  redis.call('HSET', KEYS[2], 'from', from)
end
return {forward, backward, reached_end and 1 or 0, from == '0-0' and 1 or 0}
