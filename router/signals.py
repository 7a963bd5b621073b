"""The live pass's queue signals (``router.queue_signals``): `SignalSource` re-reads the
tenant's counts and counters from Redis at most every `refresh_s`, and only for tenants
whose rules have queue-state steps: other tenants pay nothing."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from queues.state import RedisState
from router.assign import Floor, rule_for
from router.domain import Channel, Contact, QueueSignals, TenantId
from router.queue_signals import measure, needs_signals, utc_day
from router.rules import RuleBook


class SignalSource:
    """One tenant's counts and counters for `measure`, re-read at most every `refresh_s`."""

    def __init__(self, state: RedisState, tenant: TenantId, refresh_s: float = 2.0) -> None:
        self._state = state
        self._tenant = tenant
        self._refresh_s = refresh_s
        self._read_at = -1e18
        self._waiting: dict[str, int] = {}
        self._stats: dict[str, str] = {}

    async def annotate(
        self, contacts: Sequence[Contact], floor: Floor, rules: RuleBook, now: float
    ) -> list[Contact]:
        """`contacts` with their signals set where their rule needs them."""
        if not any(needs_signals(r) for r in rules):
            return list(contacts)
        wall = time.monotonic()
        if wall - self._read_at >= self._refresh_s:
            self._read_at = wall
            rows, self._stats = await self._state.queue_views(self._tenant, utc_day(now))
            self._waiting = {name: count for name, count, _ in rows}
        out: list[Contact] = []
        cache: dict[tuple[str, Channel, str, float], QueueSignals] = {}
        for contact in contacts:
            rule = rule_for(rules, contact.issue)
            if not needs_signals(rule):
                out.append(contact)
                continue
            # Contacts of one issue, channel and language share signals, unless their
            # waiting-time steps differ (the eligible count depends on them).
            key = (
                contact.issue,
                contact.channel,
                contact.language,
                float(rule.step_at(contact.waited_s(now))),
            )
            if key not in cache:
                cache[key] = measure(contact, rule, floor, self._waiting, self._stats, now)
            out.append(replace(contact, signals=cache[key]))
        return out
