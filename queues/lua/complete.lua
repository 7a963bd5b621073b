-- complete: the agent finishes an accepted contact; it enters the customer's history.
-- KEYS: 1 contact, 2 agent, 3 agent load, 4 agent contacts, 5 stats (today),
--       6 customer history (a key in the tenant's slot even when there is no customer)
-- ARGV: 1 contact id, 2 agent id, 3 token, 4 outcome, 5 note, 6 history entry JSON (its
--       'time' is filled in here), 7 history length kept, 8 events channel,
--       9 '1' if the contact has a customer, 10 the customer's satisfaction 1-5 ('' none)
-- Today's counters (issue:channel:): a person's completion counts handled, handle_ms and
-- the outcome; a bot's counts bot_handled, bot_handle_ms and bot_{outcome} instead (bot
-- containment = bot_resolved / bot_handled), so people's handle time stays people's. A
-- satisfaction adds to csat_sum and csat_n, and is kept on the contact and in the history.
-- returns {1, contact hash flattened} completed (also when repeated with the same token); {-4} no such
-- contact; {-3, status} not this agent's accepted contact with this token.
local id, agent, token = ARGV[1], ARGV[2], ARGV[3]
local c = redis.call('HMGET', KEYS[1], 'status', 'agent', 'token', 'ch', 'assigned_ms',
  'closed_ms', 'issue')
if not c[1] then
  return {-4}
end
if c[2] ~= agent or c[3] ~= token then
  return {-3, c[1]}
end
if c[1] == 'completed' then
  return {1, redis.call('HGETALL', KEYS[1])}
end
if c[1] ~= 'assigned' then
  return {-3, c[1]}
end
local now = now_ms()
redis.call('HSET', KEYS[1], 'status', 'completed', 'closed_ms', int(now), 'outcome', ARGV[4],
  'note', ARGV[5])
local csat = tonumber(ARGV[10] or '')
if csat then
  redis.call('HSET', KEYS[1], 'csat', csat)
end
local bot = redis.call('HGET', KEYS[2], 'kind') == 'bot'
if tonumber(redis.call('HINCRBY', KEYS[3], c[4], -1)) < 0 then
  redis.call('HSET', KEYS[3], c[4], 0)
end
redis.call('HDEL', KEYS[4], id)
local in_hand = 0
for _, v in ipairs(redis.call('HVALS', KEYS[3])) do
  in_hand = in_hand + tonumber(v)
end
if in_hand == 0 then
  redis.call('HSET', KEYS[2], 'idle_since_ms', int(now))
end
local p = c[7] .. ':' .. c[4] .. ':'
if bot then
  p = p .. 'bot_'
end
redis.call('HINCRBY', KEYS[5], p .. 'handled', 1)
redis.call('HINCRBY', KEYS[5], p .. 'handle_ms', int(now - tonumber(c[5])))
redis.call('HINCRBY', KEYS[5], p .. ARGV[4], 1)
if csat then
  local q = c[7] .. ':' .. c[4] .. ':'
  redis.call('HINCRBY', KEYS[5], q .. 'csat_sum', csat)
  redis.call('HINCRBY', KEYS[5], q .. 'csat_n', 1)
end
redis.call('EXPIRE', KEYS[5], 172800)
if ARGV[9] == '1' then
  local entry = cjson.decode(ARGV[6])
  entry['time_ms'] = now
  entry['channel'] = c[4]
  entry['issue'] = c[7]
  if bot then
    entry['bot'] = true
  end
  if csat then
    entry['csat'] = csat
  end
  redis.call('LPUSH', KEYS[6], cjson.encode(entry))
  redis.call('LTRIM', KEYS[6], 0, tonumber(ARGV[7]) - 1)
end
publish(ARGV[8], {ev = 'completed', c = id, a = agent, tok = tonumber(token), s = 'completed',
  ld = load_of(KEYS[3])})
return {1, redis.call('HGETALL', KEYS[1])}
