-- reserve_offer: move one queued contact to one agent as an offer, or change nothing.
-- KEYS: 1 contact, 2 queue, 3 view, 4 offers, 5 agent, 6 agent load, 7 agent contacts,
--       8 available, 9 tenant epoch (routing paused while reconciling; token floor)
-- ARGV: 1 contact id, 2 agent id, 3 offer timeout ms, 4 agent version the decision saw,
--       5 decision nonce, 6 events channel, 7 reason (explanation summary), 8 replica id
--       (named in the notice, so the deciding replica can skip its own), 9 structured
--       explanation JSON (stored as field 'why'; optional)
-- A bot (agent kind 'bot') has no capacity limit on the channels it serves (capacity >= 1)
-- and takes only contacts sent to a bot first (contact field bot = '1'; else {-2, version}).
-- returns {1, token, deadline ms} reserved (deadline from Redis TIME); {0} contact no
-- longer queued; {-1, load} agent has no free slot on the channel; {-2, version} agent not
-- available or changed since the decision (skills or capacity); {-6, until ms} routing is
-- paused: the tenant is reconciling after a Redis restart. Running it twice with the
-- same nonce returns the first answer and changes nothing more.
local id, agent = ARGV[1], ARGV[2]
local c = redis.call('HMGET', KEYS[1], 'status', 'nonce', 'token', 'deadline_ms', 'ch', 'agent',
  'bot')
if c[1] == 'offered' and c[2] == ARGV[5] and c[6] == agent then
  return {1, tonumber(c[3]), tonumber(c[4])}
end
if c[1] ~= 'queued' or not redis.call('ZSCORE', KEYS[2], id) then
  return {0}
end
local now = now_ms()
local epoch = redis.call('HMGET', KEYS[9], 'until', 'floor')
if epoch[1] and now < tonumber(epoch[1]) then
  return {-6, tonumber(epoch[1])}
end
local a = redis.call('HMGET', KEYS[5], 'ver', 'capacity', 'kind')
if redis.call('SISMEMBER', KEYS[8], agent) == 0 or a[1] ~= ARGV[4] then
  return {-2, tonumber(a[1] or -1)}
end
local ch = c[5]
local cap = cjson.decode(a[2] or '{}')[ch] or 0
local load = tonumber(redis.call('HGET', KEYS[6], ch) or '0')
if a[3] == 'bot' then
  if c[7] ~= '1' then
    return {-2, tonumber(a[1])}
  end
  if cap < 1 then
    return {-1, load}
  end
elseif load >= cap then
  return {-1, load}
end
local deadline = now + tonumber(ARGV[3])
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
redis.call('HINCRBY', KEYS[6], ch, 1)
local token = redis.call('HINCRBY', KEYS[1], 'token', 1)
if epoch[2] and token <= tonumber(epoch[2]) then
  -- After a restart: above every token issued before it, so none of those can match.
  token = tonumber(epoch[2]) + 1
  redis.call('HSET', KEYS[1], 'token', int(token))
end
redis.call('HSET', KEYS[1], 'status', 'offered', 'agent', agent, 'offered_ms', int(now),
  'deadline_ms', int(deadline), 'nonce', ARGV[5], 'reason', ARGV[7], 'why', ARGV[9] or '')
redis.call('ZADD', KEYS[4], int(deadline), id)
redis.call('HSET', KEYS[7], id, token)
redis.call('HSET', KEYS[5], 'idle_since_ms', int(now))
publish(ARGV[6], {ev = 'offered', c = id, a = agent, tok = token, s = 'offered', o = ARGV[8],
  ld = load_of(KEYS[6]), v = tonumber(a[1])})
return {1, token, deadline}
