-- write_rule: create, replace or delete the routing rule of an issue, audited in the same
-- step.
-- KEYS: 1 rule, 2 rules, 3 audit
-- ARGV: 1 issue, 2 mode create|update|upsert|delete, 3 rule JSON (not for delete),
--       4 actor, 5 action, 6 target resource name, 7 events channel, 8 audit max length
-- returns {1, before JSON or ''} done; {-1} create: exists; {-4} update/delete: no rule.
local issue, mode = ARGV[1], ARGV[2]
local before = redis.call('GET', KEYS[1])
if mode == 'create' and before then return {-1} end
if (mode == 'update' or mode == 'delete') and not before then return {-4} end
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
