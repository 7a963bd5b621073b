"""The web view's own Redis keys: the cookie-signing secret and the per-minute samples
behind the 30-minute service level. Everything else the view reads through ``RedisState``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from queues import keys
from router.domain import TenantId

#: Samples older than this are dropped (minutes).
_KEEP_MIN = 120


@dataclass(frozen=True, slots=True)
class Totals:
    """Today's cumulative service-level counters of a tenant."""

    answered: int = 0
    in_target: int = 0
    abandoned: int = 0


@dataclass(frozen=True, slots=True)
class Window:
    """Counters over a recent window of `minutes` (shorter while samples accumulate)."""

    totals: Totals
    minutes: int


class WebStore:
    """Redis access for the keys only the web view uses."""

    def __init__(self, redis: Redis) -> None:
        self._r: Any = redis  # decoded replies, untyped like RedisState's alias

    async def session_secret(self) -> str:
        """The secret that signs session cookies, made once and shared by every replica
        (so a page survives a restart and may reconnect to any replica)."""
        await self._r.set(keys.WEB_SECRET, secrets.token_hex(32), nx=True)
        return str(await self._r.get(keys.WEB_SECRET))

    async def window(self, tenant: TenantId, day: str, now_ms: int, today: Totals) -> Window:
        """Record today's totals for this minute (first writer wins) and return the
        change since the sample about 30 minutes ago, of today only."""
        minute = now_ms // 60_000
        key = keys.web_service_level(tenant)
        value = f"{day},{today.answered},{today.in_target},{today.abandoned}"
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.hsetnx(key, str(minute), value)
            pipe.hgetall(key)
            _, samples = await pipe.execute()
        stale = [m for m in samples if int(m) < minute - _KEEP_MIN]
        if stale:
            await self._r.hdel(key, *stale)
        base_minute = minute
        base = Totals()
        for m in sorted(int(m) for m in samples if int(m) >= minute - 30):
            s_day, answered, in_target, abandoned = samples[str(m)].split(",")
            if s_day == day:
                base_minute = m
                base = Totals(int(answered), int(in_target), int(abandoned))
                break
        return Window(
            Totals(
                today.answered - base.answered,
                today.in_target - base.in_target,
                today.abandoned - base.abandoned,
            ),
            max(0, minute - base_minute),
        )
