"""Redis adapters: the key scheme, the Lua scripts, RedisState, and the embedded server."""
