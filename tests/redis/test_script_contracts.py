"""Every Lua script is cluster-clean, checked on its text: it states its KEYS/ARGV contract,
touches only keys passed in KEYS (never a name built inside), takes at least one key, and
never walks a collection that grows with the tenant (no SCAN, KEYS, SMEMBERS, or whole-zset
reads)."""

from __future__ import annotations

import re

import pytest

from queues.scripts import SCRIPT_NAMES, read_lua

#: redis.call('CMD', first_argument
CALL = re.compile(r"redis\.call\('([A-Z]+)',\s*([^,)]+)")
#: Helpers of _common.lua whose first parameter is a key passed to them as KEYS[n].
HELPER_CALL = re.compile(r"\b(audit|load_of)\(([^,)]+)")
KEYLESS = {"TIME", "PUBLISH"}  # PUBLISH's channel is a value (ARGV), not a key
UNBOUNDED = {"SCAN", "KEYS", "SMEMBERS", "SSCAN", "HSCAN", "ZSCAN"}


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_script_touches_only_keys_passed_in_keys(name: str) -> None:
    source = read_lua(name)
    body = source.split(f"-- {name}:", 1)[1]
    assert "-- KEYS:" in body and "-- ARGV:" in body, "the header states KEYS and ARGV"
    for command, first in CALL.findall(body):
        assert command not in UNBOUNDED, f"{command} walks a collection of unbounded size"
        if command in KEYLESS:
            continue
        assert re.fullmatch(r"KEYS\[[^\]]+\]", first.strip()), f"{command} on {first!r}"
    for helper, first in HELPER_CALL.findall(body):
        if first.strip() != "key":  # the helper's own definition
            assert first.strip().startswith("KEYS["), f"{helper}({first})"
    assert "KEYS[1]" in body or "KEYS[i" in body, "at least one key, for routing"
    assert not re.search(r"ZRANGE[^\n]*0,\s*-1", body), "no whole sorted set read"
