-- reassert_offer: while a tenant reconciles after a Redis restart, failover or loss of data,
-- an agent re-asserts a contact it accepted under a token from before the restart. If the
-- lost writes left the contact waiting, or offered to this agent past its deadline, and the
-- contact still names this agent as the one it was last offered to, it is assigned to this
-- agent again, so it is never offered to a second agent. Outside a reconciliation, for a
-- token issued after the restart (>= the epoch floor), a token older than the contact's,
-- or a contact last offered to someone else, nothing changes: the normal rules apply.
-- (When the copy predates the offer itself, the contact names no such agent and is routed
-- again: that is the window of risk a rollback leaves, counted by the chaos run.)
-- KEYS: 1 contact, 2 queue, 3 view (of the contact's issue and channel), 4 offers,
--       5 agent, 6 agent load, 7 agent contacts, 8 tenant epoch
-- ARGV: 1 contact id, 2 agent id, 3 token, 4 events channel, 5 issue, 6 channel (the
--       view in KEYS[3])
-- returns {1, contact hash flattened} assigned to this agent (also when run twice); {-3,
-- status} nothing to re-assert; {-4} no such contact; {-1, load} no free slot; {-7} the
-- caller's view (issue, channel) is stale: read again.
local id, agent, token = ARGV[1], ARGV[2], ARGV[3]
local c = redis.call('HMGET', KEYS[1], 'status', 'agent', 'token', 'issue', 'ch')
if not c[1] then
  return {-4}
end
if c[1] == 'assigned' and c[2] == agent and c[3] == token then
  return {1, redis.call('HGETALL', KEYS[1])}
end
local now = now_ms()
local e = redis.call('HMGET', KEYS[8], 'until', 'floor')
if not e[1] or now >= tonumber(e[1]) or tonumber(token) >= tonumber(e[2] or '0') then
  return {-3, c[1]}
end
if c[2] ~= agent or tonumber(token) < tonumber(c[3] or '0') then
  return {-3, c[1]}
end
if c[1] ~= 'queued' and c[1] ~= 'offered' then
  return {-3, c[1]}
end
if c[4] ~= ARGV[5] or c[5] ~= ARGV[6] then
  return {-7}
end
local ch = c[5]
if c[1] == 'queued' then
  -- The contact takes a slot of this agent's again: there must be one free.
  local a = redis.call('HMGET', KEYS[5], 'capacity')
  local cap = cjson.decode(a[1] or '{}')[ch] or 0
  local load = tonumber(redis.call('HGET', KEYS[6], ch) or '0')
  if load >= cap then
    return {-1, load}
  end
  redis.call('HINCRBY', KEYS[6], ch, 1)
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
else
  redis.call('ZREM', KEYS[4], id)  -- its slot is counted already
end
redis.call('HSET', KEYS[1], 'status', 'assigned', 'token', token, 'assigned_ms', int(now))
redis.call('HSET', KEYS[7], id, token)
publish(ARGV[4], {ev = 'assigned', c = id, a = agent, tok = tonumber(token), s = 'assigned',
  why = 'reasserted'})
return {1, redis.call('HGETALL', KEYS[1])}
