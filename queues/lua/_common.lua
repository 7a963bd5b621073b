-- Shared helpers, prepended to every script by queues/scripts.py (not a script itself).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Integers as exact decimal strings (Lua's tostring would round large numbers).
local function int(x)
  return string.format('%.0f', x)
end
local function publish(channel, event)
  redis.call('PUBLISH', channel, cjson.encode(event))
end
local function audit(key, maxlen, actor, action, target, before, after)
  redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'actor', actor, 'action', action,
    'target', target, 'before', before or '', 'after', after or '')
end
-- The agent's load per channel as a table, for notices that let replicas update their
-- mirror without reading the agent again.
local function load_of(key)
  local flat = redis.call('HGETALL', key)
  local load = {}
  for i = 1, #flat, 2 do load[flat[i]] = tonumber(flat[i + 1]) end
  return load
end
-- Every skill a stored rule JSON names (required, or in a step): a set and a sorted list.
local function rule_skill_names(rule_json)
  local rule, seen, list = cjson.decode(rule_json), {}, {}
  local function add(skills)
    for skill in pairs(skills or {}) do
      if not seen[skill] then seen[skill] = true; list[#list + 1] = skill end
    end
  end
  add(rule['skills'])
  for _, step in ipairs(rule['steps'] or {}) do add(step['skills']) end
  table.sort(list)
  return seen, list
end
