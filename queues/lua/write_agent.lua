-- write_agent: create, update or delete an agent's profile, audited in the same step.
-- KEYS: 1 agent, 2 agents, 3 available, 4 agent load, 5 agent contacts, 6 audit,
--       7 presence, 8 skill_agents (skill -> agents holding it)
-- ARGV: 1 agent id, 2 mode create|update|delete, 3 expected version ('' = any),
--       4 profile JSON {display_name, kind, skills, capacity, groups} (update: the whole new
--       profile), 5 actor, 6 action, 7 target resource name, 8 events channel,
--       9 audit max length
-- returns {1, version} done; {-1} create: exists; {-4} update/delete: no such agent;
-- {-8, version} version mismatch; {-3} delete: the agent is signed in or holds contacts.
-- Skills and capacity live as JSON strings; every change bumps 'ver', which routing
-- decisions carry into reserve_offer, so a change applies to the very next decision.
local agent, mode = ARGV[1], ARGV[2]
local exists = redis.call('EXISTS', KEYS[1]) == 1
local function profile()
  local p = redis.call('HMGET', KEYS[1], 'display_name', 'kind', 'skills', 'capacity',
    'groups')
  return cjson.encode({display_name = p[1], kind = p[2], skills = cjson.decode(p[3]),
    capacity = cjson.decode(p[4]), groups = cjson.decode(p[5] or '[]')})
end
if mode == 'create' then
  if exists then return {-1} end
else
  if not exists then return {-4} end
  local ver = redis.call('HGET', KEYS[1], 'ver')
  if ARGV[3] ~= '' and ARGV[3] ~= ver then return {-8, tonumber(ver)} end
end
local before = ''
local old_skills = {}
if exists then
  before = profile()
  old_skills = cjson.decode(redis.call('HGET', KEYS[1], 'skills') or '{}')
end
-- The catalogue's holder counts: -1 for each skill the agent loses, +1 for each it gains.
local function count_skills(new_skills)
  for skill in pairs(old_skills) do
    if new_skills[skill] == nil then
      if redis.call('HINCRBY', KEYS[8], skill, -1) <= 0 then redis.call('HDEL', KEYS[8], skill) end
    end
  end
  for skill in pairs(new_skills) do
    if old_skills[skill] == nil then redis.call('HINCRBY', KEYS[8], skill, 1) end
  end
end
if mode == 'delete' then
  if redis.call('HGET', KEYS[1], 'state') ~= 'signed_out' or
      redis.call('HLEN', KEYS[5]) > 0 then
    return {-3}
  end
  redis.call('DEL', KEYS[1], KEYS[4], KEYS[5])
  redis.call('SREM', KEYS[2], agent)
  redis.call('SREM', KEYS[3], agent)
  redis.call('ZREM', KEYS[7], agent)
  count_skills({})
  audit(KEYS[6], ARGV[9], ARGV[5], ARGV[6], ARGV[7], before, '')
  publish(ARGV[8], {ev = 'agent', a = agent})
  return {1, 0}
end
local p = cjson.decode(ARGV[4])
count_skills(p['skills'])
redis.call('HSET', KEYS[1], 'display_name', p['display_name'], 'kind', p['kind'],
  'skills', cjson.encode(p['skills']), 'capacity', cjson.encode(p['capacity']),
  'groups', cjson.encode(p['groups'] or {}))
local ver
if mode == 'create' then
  redis.call('HSET', KEYS[1], 'state', 'signed_out', 'away_reason', '', 'idle_since_ms', 0,
    'state_ms', int(now_ms()), 'missed', 0, 'ver', 1)
  redis.call('SADD', KEYS[2], agent)
  ver = 1
else
  ver = redis.call('HINCRBY', KEYS[1], 'ver', 1)
end
audit(KEYS[6], ARGV[9], ARGV[5], ARGV[6], ARGV[7], before, profile())
publish(ARGV[8], {ev = 'agent', a = agent})
return {1, ver}
