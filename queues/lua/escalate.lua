-- escalate: a bot hands the contact it holds to people. In one step the contact leaves the
-- bot's hand and joins the queue at the place its arrival and priority give it (ahead of
-- later contacts), for people only, with the bot conversation's summary on the contact and
-- in the customer's history: never lost, never in two places.
-- KEYS: 1 contact, 2 agent (the bot), 3 agent load, 4 agent contacts, 5 queue, 6 view
--       (issue:channel), 7 views, 8 stats (today), 9 customer history (any key of the
--       tenant's slot when there is no customer)
-- ARGV: 1 contact id, 2 bot agent id, 3 the bot's offer token, 4 summary, 5 history entry
--       JSON (time, channel and issue are filled in here), 6 history length kept, 7 events
--       channel, 8 '1' if the contact has a customer, 9 view name 'issue:channel'
-- returns {1, contact hash flattened} escalated (also when repeated with the same bot and
-- token: the first answer, nothing changed); {-4} no such contact; {-3, status} not this
-- agent's accepted contact with this token; {-9, kind} the agent holding it is not a bot.
-- Counters: bot_handled, bot_escalated and bot_handle_ms (issue:channel:); the people's wait
-- restarts now (since_ms), the queue order keeps the arrival.
local id, agent, token = ARGV[1], ARGV[2], ARGV[3]
local c = redis.call('HMGET', KEYS[1], 'status', 'agent', 'token', 'ch', 'issue', 'prio',
  'arrived_ms', 'target_ms', 'esc_tok', 'esc_bot', 'assigned_ms')
if not c[1] then
  return {-4}
end
if c[9] == token and c[10] == agent then
  return {1, redis.call('HGETALL', KEYS[1])}
end
if c[2] ~= agent or c[3] ~= token then
  return {-3, c[1]}
end
local kind = redis.call('HGET', KEYS[2], 'kind')
if kind ~= 'bot' then
  return {-9, kind or ''}
end
if c[1] ~= 'assigned' then
  return {-3, c[1]}
end
local now = now_ms()
local qscore = (9 - tonumber(c[6])) * 1e13 + tonumber(c[7]) + tonumber(c[8])
redis.call('HSET', KEYS[1], 'status', 'queued', 'agent', '', 'bot', '', 'esc_bot', agent,
  'esc_tok', token, 'esc_ms', int(now), 'esc_sum', ARGV[4], 'since_ms', int(now),
  'qscore', int(qscore))
if tonumber(redis.call('HINCRBY', KEYS[3], c[4], -1)) < 0 then
  redis.call('HSET', KEYS[3], c[4], 0)
end
redis.call('HDEL', KEYS[4], id)
redis.call('ZADD', KEYS[5], int(qscore), id)
redis.call('ZADD', KEYS[6], int(now), id)
redis.call('SADD', KEYS[7], ARGV[9])
local p = c[5] .. ':' .. c[4] .. ':'
redis.call('HINCRBY', KEYS[8], p .. 'bot_handled', 1)
redis.call('HINCRBY', KEYS[8], p .. 'bot_escalated', 1)
redis.call('HINCRBY', KEYS[8], p .. 'bot_handle_ms', int(now - tonumber(c[11] or now)))
redis.call('EXPIRE', KEYS[8], 172800)
if ARGV[8] == '1' then
  local entry = cjson.decode(ARGV[5])
  entry['time_ms'] = now
  entry['channel'] = c[4]
  entry['issue'] = c[5]
  entry['bot'] = true
  redis.call('LPUSH', KEYS[9], cjson.encode(entry))
  redis.call('LTRIM', KEYS[9], 0, tonumber(ARGV[6]) - 1)
end
publish(ARGV[7], {ev = 'escalated', c = id, a = agent, tok = tonumber(token), s = 'queued',
  ld = load_of(KEYS[3])})
return {1, redis.call('HGETALL', KEYS[1])}
