-- release_offer: an offer ends without an accept (declined, expired, or withdrawn because
-- the agent went away); the contact returns to the queue at its old place, ahead of newer
-- contacts.
-- KEYS: 1 contact, 2 offers, 3 queue, 4 view, 5 agent, 6 agent load, 7 agent contacts,
--       8 available, 9 audit
-- ARGV: 1 contact id, 2 agent id, 3 token, 4 why: declined|expired|withdrawn,
--       5 offers missed in a row before the agent is set away (0 = never), 6 events channel,
--       7 audit max length
-- Its wait is shown from since_ms when set (escalated by a bot, or a callback whose time
-- came), else from its arrival.
-- returns {1, missed} released (also when repeated with the same token); {-4} no such
-- contact; {-3, status} not this agent's current offer; {-6} 'expired' before the deadline.
local id, agent, token, why = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local c = redis.call('HMGET', KEYS[1], 'status', 'agent', 'token', 'deadline_ms', 'ch',
  'qscore', 'arrived_ms', 'released', 'declined', 'since_ms')
if not c[1] then
  return {-4}
end
if c[2] ~= agent or c[3] ~= token then
  return {-3, c[1]}
end
if c[8] == token then
  return {1, tonumber(redis.call('HGET', KEYS[5], 'missed') or '0')}
end
if c[1] ~= 'offered' then
  return {-3, c[1]}
end
local now = now_ms()
if why == 'expired' and now < tonumber(c[4]) then
  return {-6}
end
redis.call('ZREM', KEYS[2], id)
redis.call('ZADD', KEYS[3], c[6], id)
redis.call('ZADD', KEYS[4], c[10] or c[7], id)
if tonumber(redis.call('HINCRBY', KEYS[6], c[5], -1)) < 0 then
  redis.call('HSET', KEYS[6], c[5], 0)
end
redis.call('HDEL', KEYS[7], id)
-- remember the last few agents who let it go, so routing tries others first
local declined = agent
if c[9] and c[9] ~= '' then
  declined = agent .. ',' .. c[9]
  local n, cut = 0, nil
  for pos in string.gmatch(declined, '()[^,]+') do
    n = n + 1
    if n == 6 then cut = pos end
  end
  if cut then declined = string.sub(declined, 1, cut - 2) end
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'released', token, 'declined', declined)
local missed = 0
if why == 'expired' then
  missed = redis.call('HINCRBY', KEYS[5], 'missed', 1)
  local limit = tonumber(ARGV[5])
  if limit > 0 and missed >= limit and redis.call('SISMEMBER', KEYS[8], agent) == 1 then
    redis.call('HSET', KEYS[5], 'state', 'away', 'away_reason', 'no_answer',
      'state_ms', int(now))
    redis.call('SREM', KEYS[8], agent)
    audit(KEYS[9], ARGV[7], 'system', 'SetAgentState', agent, 'available', 'away:no_answer')
    publish(ARGV[6], {ev = 'agent', a = agent})
  end
end
publish(ARGV[6], {ev = 'requeued', c = id, a = agent, tok = tonumber(token), why = why,
  s = 'queued', ld = load_of(KEYS[6])})
return {1, missed}
