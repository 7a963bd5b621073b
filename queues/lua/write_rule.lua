-- write_rule: create, replace or delete the routing rule of an issue, audited in the same
-- step.
-- KEYS: 1 rule, 2 rules, 3 audit, 4 skills (declared), 5 skill_agents, 6 skill_rules
-- ARGV: 1 issue, 2 mode create|update|upsert|delete, 3 rule JSON (not for delete),
--       4 actor, 5 action, 6 target resource name, 7 events channel, 8 audit max length
-- returns {1, before JSON or ''} done; {-1} create: exists; {-4} update/delete: no rule;
-- {-9, skill} the rule names a skill the catalogue does not know (nothing written).
-- A skill is known while declared, held by an agent or named by a rule; the rules naming
-- each skill are counted here (skill_rules), so a rule never names an unknown skill.
local issue, mode = ARGV[1], ARGV[2]
local before = redis.call('GET', KEYS[1])
if mode == 'create' and before then return {-1} end
if (mode == 'update' or mode == 'delete') and not before then return {-4} end
local old_seen = {}
if before then old_seen = rule_skill_names(before) end
local new_seen, new_list = {}, {}
if mode ~= 'delete' then
  new_seen, new_list = rule_skill_names(ARGV[3])
  for _, skill in ipairs(new_list) do
    if not old_seen[skill] and redis.call('HEXISTS', KEYS[4], skill) == 0 and
        tonumber(redis.call('HGET', KEYS[5], skill) or '0') <= 0 and
        tonumber(redis.call('HGET', KEYS[6], skill) or '0') <= 0 then
      return {-9, skill}
    end
  end
end
for skill in pairs(old_seen) do
  if not new_seen[skill] then
    if redis.call('HINCRBY', KEYS[6], skill, -1) <= 0 then redis.call('HDEL', KEYS[6], skill) end
  end
end
for _, skill in ipairs(new_list) do
  if not old_seen[skill] then redis.call('HINCRBY', KEYS[6], skill, 1) end
end
local after = ''
if mode == 'delete' then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], issue)
else
  after = ARGV[3]
  redis.call('SET', KEYS[1], after)
  redis.call('SADD', KEYS[2], issue)
end
audit(KEYS[3], ARGV[8], ARGV[4], ARGV[5], ARGV[6], before or '', after)
publish(ARGV[7], {ev = 'rule', i = issue})
return {1, before or ''}
