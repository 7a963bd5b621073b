-- heartbeat: keep a signed-in agent's presence alive.
-- KEYS: 1 agent, 2 presence
-- ARGV: 1 agent id
-- returns {1, state} presence renewed; {0, state} the agent is not signed in (nothing
-- changes: a heartbeat never signs anybody in); {-4} no such agent.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return {-4}
end
if state == 'signed_out' or not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return {0, state}
end
local now = now_ms()
redis.call('ZADD', KEYS[2], int(now), ARGV[1])
redis.call('HSET', KEYS[1], 'seen_ms', int(now))
return {1, state}
