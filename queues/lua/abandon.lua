-- abandon: a waiting or offered contact leaves (the customer hung up, or the platform
-- cancelled it). It leaves the queue or the agent's hand and enters the history.
-- KEYS: 1 contact, 2 queue, 3 view, 4 offers, 5 stats (today), 6 agent load, 7 agent
--       contacts (of the agent it is offered to; any key of the tenant when queued),
--       8 customer history (any key of the tenant when no customer), 9 callbacks (a
--       callback waiting for its time leaves them)
-- ARGV: 1 contact id, 2 agent id the caller saw offered ('' when queued), 3 reason,
--       4 events channel, 5 stats field prefix 'issue:channel:', 6 history entry JSON,
--       7 history length kept, 8 '1' if the contact has a customer
-- returns {1, closed ms} abandoned (also when it was already); {-4} no such contact;
-- {-3, status} already assigned or completed; {-7, agent} offered to another agent than
-- ARGV[2] (the caller reads again and retries).
local id = ARGV[1]
local c = redis.call('HMGET', KEYS[1], 'status', 'agent', 'token', 'ch', 'closed_ms')
if not c[1] then
  return {-4}
end
if c[1] == 'abandoned' then
  return {1, tonumber(c[5])}
end
if c[1] ~= 'queued' and c[1] ~= 'offered' then
  return {-3, c[1]}
end
if c[1] == 'offered' and c[2] ~= ARGV[2] then
  return {-7, c[2] or ''}
end
local now = now_ms()
if c[1] == 'offered' then
  redis.call('ZREM', KEYS[4], id)
  if tonumber(redis.call('HINCRBY', KEYS[6], c[4], -1)) < 0 then
    redis.call('HSET', KEYS[6], c[4], 0)
  end
  redis.call('HDEL', KEYS[7], id)
  publish(ARGV[4], {ev = 'withdrawn', c = id, a = c[2], tok = tonumber(c[3]), why = 'cancelled'})
else
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZREM', KEYS[9], id)
end
redis.call('HSET', KEYS[1], 'status', 'abandoned', 'closed_ms', int(now), 'outcome', '',
  'note', ARGV[3])
redis.call('HINCRBY', KEYS[5], ARGV[5] .. 'abandoned', 1)
redis.call('EXPIRE', KEYS[5], 172800)
if ARGV[8] == '1' then
  local entry = cjson.decode(ARGV[6])
  entry['time_ms'] = now
  redis.call('LPUSH', KEYS[8], cjson.encode(entry))
  redis.call('LTRIM', KEYS[8], 0, tonumber(ARGV[7]) - 1)
end
publish(ARGV[4], {ev = 'abandoned', c = id, s = 'abandoned'})
return {1, now}
