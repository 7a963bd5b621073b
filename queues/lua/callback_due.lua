-- callback_due: the time a caller chose for a callback has come; the contact joins the
-- queue as if it arrived then (priority, that time and its answer target), and its wait is
-- measured from then (since_ms).
-- KEYS: 1 contact, 2 callbacks, 3 queue, 4 view (issue:channel)
-- ARGV: 1 contact id, 2 events channel
-- returns {1, queue score} queued; {0} not a callback waiting for its time (already queued
-- or gone: running it twice changes nothing more); {-6, due ms} its time has not come.
local id = ARGV[1]
local due = redis.call('ZSCORE', KEYS[2], id)
if not due then
  return {0}
end
local c = redis.call('HMGET', KEYS[1], 'status', 'prio', 'target_ms')
if c[1] ~= 'queued' then
  redis.call('ZREM', KEYS[2], id)
  return {0}
end
due = tonumber(due)
if due > now_ms() then
  return {-6, int(due)}
end
local qscore = (9 - tonumber(c[2])) * 1e13 + due + tonumber(c[3])
redis.call('HSET', KEYS[1], 'qscore', int(qscore), 'since_ms', int(due))
redis.call('ZREM', KEYS[2], id)
redis.call('ZADD', KEYS[3], int(qscore), id)
redis.call('ZADD', KEYS[4], int(due), id)
publish(ARGV[2], {ev = 'queued', c = id, s = 'queued'})
return {1, int(qscore)}
