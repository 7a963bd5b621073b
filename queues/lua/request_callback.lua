-- request_callback: a waiting caller asks to be called back instead of holding on. The
-- contact is marked a callback (an outbound call by a person: no longer for a bot). With no
-- time it keeps its place in the queue; with a time it leaves the queue and its view and
-- waits in the callbacks set until then (callback_due.lua puts it back).
-- KEYS: 1 contact, 2 queue, 3 view (issue:channel), 4 callbacks
-- ARGV: 1 contact id, 2 callback time ms ('0': when its turn comes), 3 events channel
-- returns {1, contact hash flattened} done (running it twice changes nothing more; another
-- time reschedules); {-4} no such contact; {-3, status} not waiting (offered, assigned or
-- closed); {-10, channel} not a voice contact.
local id, at = ARGV[1], tonumber(ARGV[2])
local c = redis.call('HMGET', KEYS[1], 'status', 'ch', 'prio', 'arrived_ms', 'target_ms',
  'cb_req_ms', 'since_ms')
if not c[1] then
  return {-4}
end
if c[1] ~= 'queued' then
  return {-3, c[1]}
end
if c[2] ~= 'voice' then
  return {-10, c[2]}
end
if not c[6] then
  redis.call('HSET', KEYS[1], 'cb_req_ms', int(now_ms()))
end
redis.call('HSET', KEYS[1], 'cb', '1', 'cb_ms', int(at), 'bot', '')
if at > 0 then
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZADD', KEYS[4], int(at), id)
else
  -- Its place: priority, arrival and target, as enqueue.lua gave it (out of a bot's lane).
  local qscore = (9 - tonumber(c[3])) * 1e13 + tonumber(c[4]) + tonumber(c[5])
  redis.call('HSET', KEYS[1], 'qscore', int(qscore))
  redis.call('ZREM', KEYS[4], id)
  redis.call('ZADD', KEYS[2], int(qscore), id)
  redis.call('ZADD', KEYS[3], c[7] or c[4], id)
end
publish(ARGV[3], {ev = 'callback', c = id, s = 'queued'})
return {1, redis.call('HGETALL', KEYS[1])}
