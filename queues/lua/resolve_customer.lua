-- resolve_customer: map a contact's identities to one customer, creating it if new.
-- KEYS: 1 customer (the one the caller chose: found through the identities, or new),
--       2.. one identity key per identity
-- ARGV: 1 customer id, 2 identities JSON [{kind, value}] in KEYS order, 3..: the customer
--       id each identity key held when the caller read it ('' = none)
-- returns {1, customer id} resolved; {-9} an identity changed since the caller read it
-- (the caller reads again and retries). Identities that resolve to two different
-- customers keep their own mapping (merging histories is a supervised step).
local n = #KEYS - 1
for i = 1, n do
  if (redis.call('GET', KEYS[i + 1]) or '') ~= ARGV[i + 2] then
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
for i = 1, n do
  if ARGV[i + 2] == '' then
    redis.call('SET', KEYS[i + 1], ARGV[1])
    local it = ids[i]
    if not seen[it['kind'] .. ':' .. it['value']] then
      known[#known + 1] = it
      seen[it['kind'] .. ':' .. it['value']] = true
    end
  end
end
redis.call('HSET', KEYS[1], 'identities', cjson.encode(known))
return {1, ARGV[1]}
