-- index_skills: count the catalogue's skill_agents and skill_rules afresh from the agents
-- and rules themselves, once per tenant (data written before the counts existed), and mark
-- the tenant counted; write_agent and write_rule keep the counts from then on.
-- KEYS: 1 skill_agents, 2 skill_rules, 3 counted marker, 4 agents, 5 rules,
--       then the n agent hashes, then the m rule strings
-- ARGV: 1 n, 2 m, then the n agent ids, then the m issues (as the keys)
-- returns {1} counted; {0} counted before; {-2} the agents or rules listed are not the
-- tenant's agents and rules any more (one was written meanwhile): list them again.
if redis.call('EXISTS', KEYS[3]) == 1 then return {0} end
local n, m = tonumber(ARGV[1]), tonumber(ARGV[2])
if redis.call('SCARD', KEYS[4]) ~= n or redis.call('SCARD', KEYS[5]) ~= m then return {-2} end
for i = 1, n do
  if redis.call('SISMEMBER', KEYS[4], ARGV[2 + i]) == 0 then return {-2} end
end
for j = 1, m do
  if redis.call('SISMEMBER', KEYS[5], ARGV[2 + n + j]) == 0 then return {-2} end
end
redis.call('DEL', KEYS[1], KEYS[2])
for i = 1, n do
  local raw = redis.call('HGET', KEYS[5 + i], 'skills')
  if raw then
    for skill in pairs(cjson.decode(raw)) do redis.call('HINCRBY', KEYS[1], skill, 1) end
  end
end
for j = 1, m do
  local raw = redis.call('GET', KEYS[5 + n + j])
  if raw then
    local _, list = rule_skill_names(raw)
    for _, skill in ipairs(list) do redis.call('HINCRBY', KEYS[2], skill, 1) end
  end
end
redis.call('SET', KEYS[3], '1')
return {1}
