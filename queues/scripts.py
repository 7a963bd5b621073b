"""The Lua scripts: read from ``queues/lua/``, one per verb, with the shared helpers.

Each script is registered with redis-py, which calls it by EVALSHA and reloads it by
itself on NOSCRIPT (after a Redis restart, a failover or SCRIPT FLUSH).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

SCRIPT_NAMES = (
    "enqueue",
    "reserve_offer",
    "accept_offer",
    "release_offer",
    "complete",
    "abandon",
    "write_agent",
    "set_state",
    "heartbeat",
    "write_rule",
    "write_skill",
    "index_skills",
    "resolve_customer",
    "merge_customers",
    "escalate",
    "request_callback",
    "callback_due",
    "check_epoch",
    "reassert_offer",
)


@cache
def read_lua(name: str) -> str:
    """Source of script `name`, with the shared helpers of ``_common.lua`` in front."""
    folder = resources.files("queues") / "lua"
    common = (folder / "_common.lua").read_text(encoding="utf-8")
    body = (folder / f"{name}.lua").read_text(encoding="utf-8")
    return common + "\n" + body
