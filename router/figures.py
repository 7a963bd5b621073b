"""Live queue figures per issue and channel, and the expected wait of a new contact.

Counts come from Redis (waiting contacts, today's counters); who could serve comes from
this replica's mirror of the floor, judged by the same eligibility as routing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from router.assign import Floor, rule_for
from router.domain import AgentState, Channel, Contact, ContactId, TenantId
from router.engine import Engine, today
from router.estimate import WaitEstimate, expected_wait
from router.rules import RuleBook
from router.scoring import has_skills


@dataclass(frozen=True, slots=True)
class ViewFigures:
    """Figures of one issue on one channel."""

    issue: str
    channel: Channel
    waiting: int
    oldest_wait_s: float
    answered: int
    answered_in_target: int
    abandoned: int
    aht_s: float | None
    eligible_available: int
    estimate: WaitEstimate

    @property
    def service_level(self) -> float:
        """Answered within target over answered and abandoned; 1 when there are none."""
        total = self.answered + self.abandoned
        return self.answered_in_target / total if total else 1.0


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """The tenant's queue by issue and channel."""

    views: list[ViewFigures]
    waiting: int
    agents_available: int
    agents_signed_in: int
    read_ms: int


def _capacity(
    floor: Floor, rules: RuleBook, issue: str, channel: Channel, now: float
) -> tuple[int, int, int]:
    """(slots of eligible signed-in agents, free slots now, available agents with one)."""
    probe = Contact(ContactId("probe"), channel, issue, arrived_at=now)
    required = rule_for(rules, issue).requirements(probe, now)
    slots = free = agents = 0
    for agent in floor:
        if agent.state is AgentState.SIGNED_OUT or not has_skills(agent, required):
            continue
        cap = agent.capacity.get(channel, 0)
        if agent.state is AgentState.AVAILABLE:
            slots += cap
            open_slots = agent.free_slots(channel)
            free += open_slots
            agents += 1 if open_slots else 0
    return slots, free, agents


def _counter(stats: Mapping[str, str], prefix: str, name: str) -> int:
    return int(stats.get(prefix + name, 0))


async def queue_figures(
    engine: Engine, tenant: TenantId, issue: str = "", channel: Channel | None = None
) -> QueueFigures:
    """Figures for every issue and channel seen (optionally one issue or channel)."""
    router = engine.router(tenant)
    await router.refresh_rules()
    now = engine.now()
    rows, stats = await engine.state.queue_views(tenant, today(now))
    available, signed_in = await engine.state.presence_counts(tenant)
    views = []
    total = 0
    for name, waiting, oldest_ms in rows:
        view_issue, ch_name = name.rsplit(":", 1)
        ch = Channel(ch_name)
        total += waiting
        if (issue and view_issue != issue) or (channel is not None and ch is not channel):
            continue
        views.append(
            _view(router.floor, router.rules, stats, view_issue, ch, waiting, oldest_ms, now)
        )
    return QueueFigures(views, total, available, signed_in, int(now * 1000))


def _view(
    floor: Floor,
    rules: RuleBook,
    stats: Mapping[str, str],
    issue: str,
    channel: Channel,
    waiting: int,
    oldest_ms: int | None,
    now: float,
) -> ViewFigures:
    prefix = f"{issue}:{channel.value}:"
    handled = _counter(stats, prefix, "handled")
    aht = _counter(stats, prefix, "handle_ms") / 1000 / handled if handled else None
    slots, free, agents = _capacity(floor, rules, issue, channel, now)
    return ViewFigures(
        issue=issue,
        channel=channel,
        waiting=waiting,
        oldest_wait_s=max(0.0, now - oldest_ms / 1000) if oldest_ms else 0.0,
        answered=_counter(stats, prefix, "answered"),
        answered_in_target=_counter(stats, prefix, "in_target"),
        abandoned=_counter(stats, prefix, "abandoned"),
        aht_s=aht,
        eligible_available=agents,
        estimate=expected_wait(waiting, slots, free, aht),
    )


async def estimate_wait(
    engine: Engine, tenant: TenantId, issue: str, channel: Channel, priority: int
) -> WaitEstimate:
    """Expected wait of a new contact (priority is accepted for the API's sake; the
    method counts everybody waiting for the same issue and channel as ahead)."""
    figures = await queue_figures(engine, tenant, issue, channel)
    if figures.views:
        return figures.views[0].estimate
    router = engine.router(tenant)
    slots, free, _ = _capacity(router.floor, router.rules, issue, channel, engine.now())
    return expected_wait(0, slots, free, None)
