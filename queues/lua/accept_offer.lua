-- accept_offer: the agent takes the offered contact.
-- KEYS: 1 contact, 2 offers, 3 agent, 4 stats (today)
-- ARGV: 1 contact id, 2 agent id, 3 token, 4 events channel
-- returns {1, contact hash flattened} assigned (also when repeated with the same token); {-4} no such
-- contact; {-3, status} not this agent's current offer (stale token, other agent, or not
-- offered); {-5} the offer expired (Redis TIME past its deadline).
-- A person's answer counts in today's service level, its wait measured from since_ms when
-- set (escalated by a bot, or a callback whose time came), else from arrival; a bot's
-- answer does not count (bots answer at once; the people after them are what is measured).
local id, agent, token = ARGV[1], ARGV[2], ARGV[3]
local c = redis.call('HMGET', KEYS[1], 'status', 'agent', 'token', 'deadline_ms', 'arrived_ms',
  'target_ms', 'assigned_ms', 'issue', 'ch', 'since_ms')
if not c[1] then
  return {-4}
end
if c[2] ~= agent or c[3] ~= token then
  return {-3, c[1]}
end
if c[1] == 'assigned' then
  return {1, redis.call('HGETALL', KEYS[1])}
end
if c[1] ~= 'offered' then
  return {-3, c[1]}
end
local now = now_ms()
if now >= tonumber(c[4]) then
  return {-5}
end
redis.call('HSET', KEYS[1], 'status', 'assigned', 'assigned_ms', int(now))
redis.call('ZREM', KEYS[2], id)
redis.call('HSET', KEYS[3], 'missed', 0)
if redis.call('HGET', KEYS[3], 'kind') ~= 'bot' then
  local wait = now - tonumber(c[10] or c[5])
  local p = c[8] .. ':' .. c[9] .. ':'
  redis.call('HINCRBY', KEYS[4], p .. 'answered', 1)
  redis.call('HINCRBY', KEYS[4], p .. 'wait_ms', int(wait))
  if wait <= tonumber(c[6]) then
    redis.call('HINCRBY', KEYS[4], p .. 'in_target', 1)
  end
  redis.call('EXPIRE', KEYS[4], 172800)
end
publish(ARGV[4], {ev = 'assigned', c = id, a = agent, tok = tonumber(token), s = 'assigned'})
return {1, redis.call('HGETALL', KEYS[1])}
