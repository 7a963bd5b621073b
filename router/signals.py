"""Queue signals for relaxation steps that trigger on queue state (``QueueSignals``).

For a contact whose rule has such a step, the live pass measures, for the contact's issue
and channel:

* ``expected_wait_s``: ``router.estimate.expected_wait`` with the contacts waiting in the
  issue-and-channel view, the eligible signed-in agents' slots on the channel (free and
  in all) and today's average handle time -- the same method as ``EstimateWait``;
* ``service_level``: today's answered within target over answered and abandoned (1 when
  there are none yet);
* ``eligible_agents``: available agents holding every skill the contact needs under its
  waiting-time steps (queue-state steps excluded, so a step cannot feed on itself).

`measure` is pure. `SignalSource` re-reads the counts and counters at most every
`refresh_s` and only for tenants whose rules have queue-state steps: other tenants pay
nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from queues.state import RedisState
from router.assign import Floor, rule_for
from router.domain import AgentState, Channel, Contact, QueueSignals, TenantId
from router.estimate import expected_wait
from router.rules import Rule, RuleBook
from router.scoring import has_skills


def needs_signals(rule: Rule) -> bool:
    """Has the rule a step that triggers on queue state?"""
    return any(step.on_queue_state for step in rule.steps)


def measure(
    contact: Contact,
    rule: Rule,
    floor: Floor,
    waiting: Mapping[str, int],
    stats: Mapping[str, str],
    now: float,
) -> QueueSignals:
    """The queue signals of `contact` at `now` (see the module docstring)."""
    required = rule.requirements(replace(contact, signals=None), now)
    channel = contact.channel
    slots = free = eligible = 0
    for agent in floor.candidates(required) if required else floor:
        if agent.state is AgentState.SIGNED_OUT or not has_skills(agent, required):
            continue
        if agent.state is AgentState.AVAILABLE:
            eligible += 1
            slots += agent.capacity.get(channel, 0)
            free += agent.free_slots(channel)
    prefix = f"{contact.issue}:{channel.value}:"
    handled = int(stats.get(prefix + "handled", 0))
    aht = int(stats.get(prefix + "handle_ms", 0)) / 1000 / handled if handled else None
    ahead = waiting.get(f"{contact.issue}:{channel.value}", 0)
    estimate = expected_wait(ahead, slots, free, aht)
    answered = int(stats.get(prefix + "answered", 0))
    abandoned = int(stats.get(prefix + "abandoned", 0))
    in_target = int(stats.get(prefix + "in_target", 0))
    total = answered + abandoned
    return QueueSignals(
        expected_wait_s=estimate.wait_s,
        service_level=in_target / total if total else 1.0,
        eligible_agents=eligible,
    )


def utc_day(now_s: float) -> str:
    """The UTC day (``yyyymmdd``) counters are kept under."""
    return datetime.fromtimestamp(now_s, UTC).strftime("%Y%m%d")


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
