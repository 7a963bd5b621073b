-- resolve_customer: map a contact's identities to one customer, creating it if new, and
-- return the customer's newest history entries (what routing uses for affinity).
-- KEYS: 1 customer (the one the caller chose: found through the identities, or new),
--       2 its history, 3.. one identity key per identity
-- ARGV: 1 customer id, 2 identities JSON [{kind, value}] in KEYS order, 3 history entries
--       to return, 4..: the customer id each identity key held when the caller read it
--       ('' = none)
-- returns {1, customer id, entry JSON...} resolved; {-9} an identity changed since the
-- caller read it (the caller reads again and retries). Identities that resolve to two
-- different customers keep their own mapping (merging histories is a supervised step).
local n = #KEYS - 2
for i = 1, n do
  if (redis.call('GET', KEYS[i + 2]) or '') ~= ARGV[i + 3] then
    return {-9}
  end
end
local ids = cjson.decode(ARGV[2])
local known = {}
local stored = redis.call('HGET', KEYS[1], 'identities')
if stored then
  known = cjson.decode(stored)
else
  redis.call('HSET', KEYS[1], 'created_ms', int(now_ms()))
end
local seen = {}
for _, it in ipairs(known) do seen[it['kind'] .. ':' .. it['value']] = true end
local changed = not stored
for i = 1, n do
  if ARGV[i + 3] == '' then
    redis.call('SET', KEYS[i + 2], ARGV[1])
    local it = ids[i]
    if not seen[it['kind'] .. ':' .. it['value']] then
      known[#known + 1] = it
      seen[it['kind'] .. ':' .. it['value']] = true
      changed = true
    end
  end
end
if changed then
  redis.call('HSET', KEYS[1], 'identities', cjson.encode(known))
end
local result = {1, ARGV[1]}
for _, entry in ipairs(redis.call('LRANGE', KEYS[2], 0, tonumber(ARGV[3]) - 1)) do
  result[#result + 1] = entry
end
return result
