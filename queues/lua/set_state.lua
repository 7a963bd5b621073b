-- set_state: an agent signs in, changes state, or signs out; audited in the same step.
-- KEYS: 1 agent, 2 available, 3 presence, 4 agent contacts, 5 audit
-- ARGV: 1 agent id, 2 new state available|away|signed_out, 3 away reason, 4 actor,
--       5 events channel, 6 audit max length, 7 '1' to (re)start presence (sign-in)
-- returns {1, previous state} done (repeating it changes nothing more); {-4} no such agent;
-- {-3, n} signing out while n contacts are offered or held (the engine returns offers
-- first; accepted contacts must be completed).
local agent, state = ARGV[1], ARGV[2]
local prev = redis.call('HGET', KEYS[1], 'state')
if not prev then
  return {-4}
end
if state == 'signed_out' then
  local n = redis.call('HLEN', KEYS[4])
  if n > 0 then return {-3, n} end
end
local reason = ARGV[3]
if state ~= 'away' then reason = '' end
local old_reason = redis.call('HGET', KEYS[1], 'away_reason') or ''
if prev == state and old_reason == reason and ARGV[7] ~= '1' then
  return {1, prev}
end
local now = now_ms()
redis.call('HSET', KEYS[1], 'state', state, 'away_reason', reason, 'state_ms', int(now))
if state == 'available' then
  if prev ~= 'available' then
    redis.call('HSET', KEYS[1], 'idle_since_ms', int(now), 'missed', 0)
  end
  redis.call('SADD', KEYS[2], agent)
else
  redis.call('SREM', KEYS[2], agent)
end
if state == 'signed_out' then
  redis.call('ZREM', KEYS[3], agent)
elseif ARGV[7] == '1' or prev == 'signed_out' then
  redis.call('ZADD', KEYS[3], int(now), agent)
end
local before, after = prev, state
if old_reason ~= '' then before = prev .. ':' .. old_reason end
if reason ~= '' then after = state .. ':' .. reason end
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*', 'actor', ARGV[4], 'action',
  'SetAgentState', 'target', agent, 'before', before, 'after', after)
publish(ARGV[5], {ev = 'agent', a = agent})
return {1, prev}
