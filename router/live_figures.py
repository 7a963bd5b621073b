"""Live figures for platforms and supervisors, pushed as a stream (``WatchQueueFigures``).

Each push holds the queue figures per issue and channel (``router.figures``, with the
expected wait of ``router.estimate``) and one row per channel, every channel side by side,
from today's counters (``issue:channel:counter`` in the stats hash):

* ``service_level``: in_target / (answered + abandoned), 1 when none; its target is the
  strictest ``service_level`` among the tenant's rules;
* ``channel_switch_rate`` and ``repeat_contact_rate``: ``switch`` and ``repeat`` counters
  (``router.history``) over the channel's contacts today (answered + abandoned + waiting);
* ``first_contact_resolution``: (``resolved`` - ``came_back``) / ``handled``: contacts
  resolved on this channel that the customer did not have to come back about;
* ``satisfaction``: ``csat_sum`` / ``csat_n``; ``bot_containment``: ``bot_resolved`` /
  ``bot_handled`` (0 when none).

A push follows every notice of the tenant (at most one per `min_interval`), and at least
one every `HEARTBEAT_S`, so a quiet queue still shows its waits growing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from router.domain import Channel, TenantId
from router.engine import Engine, today
from router.figures import QueueFigures, queue_figures
from router.rules import Rule

HEARTBEAT_S = 10.0


@dataclass(frozen=True, slots=True)
class ChannelRow:
    """Today's figures of one channel."""

    channel: Channel
    waiting: int
    service_level: float
    service_level_target: float
    answered: int
    abandoned: int
    channel_switch_rate: float
    repeat_contact_rate: float
    first_contact_resolution: float
    satisfaction: float
    satisfaction_count: int
    bot_containment: float


def _ratio(num: float, den: float, empty: float = 0.0) -> float:
    return num / den if den > 0 else empty


def channel_rows(
    stats: Mapping[str, str], waiting: Mapping[Channel, int], rules: Iterable[Rule]
) -> list[ChannelRow]:
    """One row per channel, in channel order (see the module docstring). Pure."""
    sums: defaultdict[Channel, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
    for name, value in stats.items():
        parts = name.rsplit(":", 2)
        if len(parts) != 3 or parts[1] not in Channel._value2member_map_:
            continue
        sums[Channel(parts[1])][parts[2]] += int(value)
    target = max((r.service_level for r in rules), default=0.8)
    rows = []
    for channel in Channel:
        c = sums[channel]
        contacts = c["answered"] + c["abandoned"] + waiting.get(channel, 0)
        rows.append(
            ChannelRow(
                channel=channel,
                waiting=waiting.get(channel, 0),
                service_level=_ratio(c["in_target"], c["answered"] + c["abandoned"], 1.0),
                service_level_target=target,
                answered=c["answered"],
                abandoned=c["abandoned"],
                channel_switch_rate=_ratio(c["switch"], contacts),
                repeat_contact_rate=_ratio(c["repeat"], contacts),
                first_contact_resolution=_ratio(
                    max(0, c["resolved"] - c["came_back"]), c["handled"]
                ),
                satisfaction=_ratio(c["csat_sum"], c["csat_n"]),
                satisfaction_count=c["csat_n"],
                bot_containment=_ratio(c["bot_resolved"], c["bot_handled"]),
            )
        )
    return rows


async def live_figures(engine: Engine, tenant: TenantId) -> tuple[QueueFigures, list[ChannelRow]]:
    """The figures of one push."""
    figures = await queue_figures(engine, tenant)
    _, stats = await engine.state.queue_views(tenant, today(engine.now()))
    waiting: defaultdict[Channel, int] = defaultdict(int)
    for view in figures.views:
        waiting[view.channel] += view.waiting
    rules = list(engine.router(tenant).rules)
    return figures, channel_rows(stats, waiting, rules)


async def watch_figures(
    engine: Engine, tenant: TenantId, min_interval_s: float
) -> AsyncIterator[tuple[QueueFigures, list[ChannelRow]]]:
    """The figures now, then after the tenant's notices (see the module docstring)."""
    changed = asyncio.Event()

    def listener(event_tenant: TenantId, event: Mapping[str, Any]) -> None:
        if event_tenant == tenant:
            changed.set()

    engine.hub.listeners.append(listener)
    try:
        while True:
            started = time.monotonic()
            changed.clear()
            yield await live_figures(engine, tenant)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), HEARTBEAT_S)
            rest = min_interval_s - (time.monotonic() - started)
            if rest > 0:
                await asyncio.sleep(rest)
    finally:
        engine.hub.listeners.remove(listener)
