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
