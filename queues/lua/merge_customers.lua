-- merge_customers: merge customer `gone` into customer `keep`, atomically and audited:
-- gone's identities resolve to keep, the two histories become one (newest first, by
-- time_ms, bounded), gone's hash records `merged_into` and loses its identities.
-- KEYS: 1 keep hash, 2 keep history, 3 gone hash, 4 gone history, 5 audit stream,
--       6.. one identity key per identity of gone, in the order of ARGV[3]
-- ARGV: 1 keep id, 2 gone id, 3 gone's identities JSON as the caller read them,
--       4 history length bound, 5 actor, 6 audit maxlen, 7 audit target
-- returns {1, identities moved, entries kept} merged; {0} gone already merged into keep;
-- {-4, which} a customer does not exist ('keep' or 'gone'); {-9} gone's identities changed
-- since the caller read them (read again and retry). Running it twice changes nothing more.
if ARGV[1] == ARGV[2] then
  return {0}
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {-4, 'keep'}
end
local merged = redis.call('HGET', KEYS[3], 'merged_into')
if merged == ARGV[1] then
  return {0}
end
if redis.call('EXISTS', KEYS[3]) == 0 or merged then
  return {-4, 'gone'}
end
if (redis.call('HGET', KEYS[3], 'identities') or '[]') ~= ARGV[3] then
  return {-9}
end
for i = 6, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[2] then
    return {-9}
  end
end
local keep_ids = cjson.decode(redis.call('HGET', KEYS[1], 'identities') or '[]')
local seen = {}
for _, it in ipairs(keep_ids) do seen[it['kind'] .. ':' .. it['value']] = true end
local moved = 0
for i, it in ipairs(cjson.decode(ARGV[3])) do
  redis.call('SET', KEYS[i + 5], ARGV[1])
  moved = moved + 1
  if not seen[it['kind'] .. ':' .. it['value']] then
    keep_ids[#keep_ids + 1] = it
    seen[it['kind'] .. ':' .. it['value']] = true
  end
end
redis.call('HSET', KEYS[1], 'identities', cjson.encode(keep_ids))
-- Both lists are newest first: merge them by time_ms, newest first, up to the bound.
local a = redis.call('LRANGE', KEYS[2], 0, -1)
local b = redis.call('LRANGE', KEYS[4], 0, -1)
local function t(entry) return tonumber(cjson.decode(entry)['time_ms'] or 0) end
local out, i, j, bound = {}, 1, 1, tonumber(ARGV[4])
while #out < bound and (i <= #a or j <= #b) do
  if j > #b or (i <= #a and t(a[i]) >= t(b[j])) then
    out[#out + 1] = a[i]
    i = i + 1
  else
    out[#out + 1] = b[j]
    j = j + 1
  end
end
redis.call('DEL', KEYS[2], KEYS[4])
if #out > 0 then
  redis.call('RPUSH', KEYS[2], unpack(out))
end
redis.call('HSET', KEYS[3], 'merged_into', ARGV[1], 'identities', '[]')
audit(KEYS[5], ARGV[6], ARGV[5], 'customer.merge', ARGV[7], ARGV[2],
  cjson.encode({into = ARGV[1], identities = moved, history = #out}))
return {1, moved, #out}
