-- write_skill: declare a skill in the tenant's catalogue, or withdraw its declaration,
-- audited in the same step.
-- KEYS: 1 skills (declared), 2 skill_agents, 3 skill_rules, 4 audit
-- ARGV: 1 skill, 2 mode create|delete, 3 skill JSON {description} (create), 4 actor,
--       5 action, 6 target resource name, 7 audit max length
-- (no notice is published: no replica caches the catalogue, write_rule reads it)
-- returns {1, skill JSON} done (delete: as it was); {-1} create: declared already;
-- {-4} delete: not declared; {-3, rules} delete: rules name it and no agent holds it.
local skill, mode = ARGV[1], ARGV[2]
local before = redis.call('HGET', KEYS[1], skill)
if mode == 'create' then
  if before then return {-1} end
  local value = cjson.decode(ARGV[3])
  value['created_ms'] = int(now_ms())
  local after = cjson.encode(value)
  redis.call('HSET', KEYS[1], skill, after)
  audit(KEYS[4], ARGV[7], ARGV[4], ARGV[5], ARGV[6], '', after)
  return {1, after}
end
if not before then return {-4} end
local rules = tonumber(redis.call('HGET', KEYS[3], skill) or '0')
local agents = tonumber(redis.call('HGET', KEYS[2], skill) or '0')
if rules > 0 and agents <= 0 then return {-3, rules} end
redis.call('HDEL', KEYS[1], skill)
audit(KEYS[4], ARGV[7], ARGV[4], ARGV[5], ARGV[6], before, '')
return {1, before}
