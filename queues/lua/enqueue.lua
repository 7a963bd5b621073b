-- enqueue: put a new contact in the tenant's queue, once per contact id and idempotency key.
-- KEYS: 1 contact, 2 queue, 3 view (issue:channel), 4 views, 5 idempotency record
-- ARGV: 1 contact id, 2 fields JSON (flat string map), 3 priority 0-9, 4 answer target ms,
--       5 payload digest ('' = no idempotency key), 6 idempotency TTL s, 7 events channel,
--       8 view name 'issue:channel', 9 W3C traceparent of the submit's span (stored as
--       field tp; '' or absent: none)
-- returns {1, contact id, arrived ms} queued; {0, contact id} the same request again (first
-- answer); {-1} idempotency key reused with another payload. Running it twice changes
-- nothing more. Queue order: (9 - priority) * 1e13 + arrival ms + target ms (lowest first);
-- a contact for a bot first (field bot = '1') 1e15 less, in front: bots have no capacity
-- limit, so it holds nobody up (escalate.lua gives it its place among people).
local id = ARGV[1]
if ARGV[5] ~= '' then
  local seen = redis.call('GET', KEYS[5])
  if seen then
    local sep = string.find(seen, '|', 1, true)
    if string.sub(seen, 1, sep - 1) == ARGV[5] then
      return {0, string.sub(seen, sep + 1)}
    end
    return {-1}
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, id}
end
local now = now_ms()
local target = tonumber(ARGV[4])
local qscore = (9 - tonumber(ARGV[3])) * 1e13 + now + target
local fields = cjson.decode(ARGV[2])
if fields['bot'] == '1' then
  qscore = qscore - 1e15
end
local args = {}
for k, v in pairs(fields) do
  args[#args + 1] = k
  args[#args + 1] = v
end
if ARGV[9] and ARGV[9] ~= '' then
  args[#args + 1] = 'tp'
  args[#args + 1] = ARGV[9]
end
redis.call('HSET', KEYS[1], 'arrived_ms', int(now), 'target_ms', int(target),
  'qscore', int(qscore), 'status', 'queued', 'token', 0, unpack(args))
redis.call('ZADD', KEYS[2], int(qscore), id)
redis.call('ZADD', KEYS[3], int(now), id)
redis.call('SADD', KEYS[4], ARGV[8])
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[5], ARGV[5] .. '|' .. id, 'EX', tonumber(ARGV[6]))
end
publish(ARGV[7], {ev = 'queued', c = id, s = 'queued'})
return {1, id, int(now)}
