-- check_epoch: note which Redis process (run id) holds the tenant's state; when it is not
-- the one noted before, Redis restarted, failed over or lost data since, so start a
-- reconciliation: routing pauses for the hold period, and every offer token issued from
-- now on exceeds any issued before (the floor is Redis TIME in ms), so a write fenced by a
-- token from before the restart can never match an offer made after it.
-- KEYS: 1 tenant epoch hash (boot, floor, until, restarts)
-- ARGV: 1 run id of the Redis process now, 2 hold ms, 3 events channel
-- returns {0} nothing to do (same process, or first sight of the tenant); {1, until ms,
-- previous run id} a reconciliation started. Running it twice returns {0} the second time.
local boot = redis.call('HGET', KEYS[1], 'boot')
if boot == ARGV[1] then
  return {0}
end
redis.call('HSET', KEYS[1], 'boot', ARGV[1])
if not boot then
  return {0}
end
local now = now_ms()
local floor = tonumber(redis.call('HGET', KEYS[1], 'floor') or '0')
if now > floor then
  floor = now
end
local until_ms = now + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'floor', int(floor), 'until', int(until_ms))
redis.call('HINCRBY', KEYS[1], 'restarts', 1)
publish(ARGV[3], {ev = 'recovering', u = int(until_ms)})
return {1, int(until_ms), boot}
