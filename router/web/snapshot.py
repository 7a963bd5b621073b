"""One tenant's floor as a supervisor sees it, read from Redis in a few round trips.

Figures are computed from the same fresh read as the agent grid, so one page never
contradicts itself, and the standalone ``omniroute web`` process needs no routing mirror.
Eligibility is judged by the routing core (``rule_for``, ``Rule.required_at``,
``has_skills``); the expected wait is the API's method (``router.estimate``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from queues.records import ContactRecord, parse_agent, parse_contact, rule_from_json
from queues.state import RedisState
from router.assign import rule_for
from router.domain import Agent, AgentState, Channel, ContactStatus, TenantId
from router.engine import today
from router.estimate import expected_wait
from router.rules import Rule, RuleBook
from router.scoring import has_skills
from router.web.store import Totals, WebStore, Window

#: Waiting contacts listed on the page (the queue may be far longer).
WAITING_SHOWN = 25
#: Service-level target of a tenant without rules.
DEFAULT_SL_TARGET = 0.8


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One issue on one channel: a view of the tenant's single queue."""

    issue: str
    channel: Channel
    waiting: int
    oldest_ms: int | None
    answer_target_s: float
    answered: int
    in_target: int
    abandoned: int
    sl_target: float
    expected_wait_s: float | None
    eligible_available: int
    eligible_signed_in: int
    step: int
    step_text: str

    @property
    def service_level(self) -> float | None:
        """In target over answered and abandoned today; None when there were none."""
        total = self.answered + self.abandoned
        return self.in_target / total if total else None

    def alerts(self, now_ms: int) -> tuple[str, ...]:
        """Thresholds this row breaches: ``wait``, ``sl``, ``no_agent``."""
        found: list[str] = []
        if self.oldest_ms is not None and now_ms - self.oldest_ms > self.answer_target_s * 1000:
            found.append("wait")
        sl = self.service_level
        if sl is not None and sl < self.sl_target:
            found.append("sl")
        if self.waiting and not self.eligible_signed_in:
            found.append("no_agent")
        return tuple(found)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one page shows, at `now_ms` (Redis clock)."""

    tenant: TenantId
    now_ms: int
    queues: tuple[QueueRow, ...]
    agents: tuple[Agent, ...]
    contacts_in_hand: Mapping[str, tuple[str, ...]]
    waiting: tuple[ContactRecord, ...]
    waiting_total: int
    waiting_by_channel: Mapping[Channel, int]
    today: Totals
    window: Window
    sl_target: float
    skills: tuple[str, ...]

    @property
    def oldest_ms(self) -> int | None:
        """Arrival of the longest-waiting contact."""
        times = [q.oldest_ms for q in self.queues if q.oldest_ms is not None]
        return min(times) if times else None

    def agents_in(self, state: AgentState) -> int:
        """How many agents are in `state`."""
        return sum(1 for a in self.agents if a.state is state)

    @property
    def agents_busy(self) -> int:
        """Signed-in agents holding at least one contact."""
        return sum(1 for a in self.agents if a.state is not AgentState.SIGNED_OUT and a.load)

    @property
    def occupancy(self) -> float | None:
        """Contacts in hand over capacity of the signed-in agents; None with nobody in."""
        present = [a for a in self.agents if a.state is not AgentState.SIGNED_OUT]
        capacity = sum(sum(a.capacity.values()) for a in present)
        return sum(a.contacts_in_hand for a in present) / capacity if capacity else None


def service_level(totals: Totals) -> float | None:
    """In target over answered and abandoned; None when there were none."""
    total = totals.answered + totals.abandoned
    return totals.in_target / total if total else None


def _step_text(rule: Rule, step: int) -> str:
    if step < 0:
        return ""
    relaxed = rule.steps[step]
    changes = ", ".join(
        f"{s} dropped" if lvl == 0 else f"{s}≥{lvl}"
        for s, lvl in sorted(relaxed.min_proficiency.items())
    )
    return f"step {step + 1} (after {relaxed.after_s:.0f} s: {changes})"


def queue_row(
    rules: RuleBook,
    agents: Sequence[Agent],
    stats: Mapping[str, str],
    name: str,
    waiting: int,
    oldest_ms: int | None,
    now_ms: int,
) -> QueueRow:
    """Figures of one ``issue:channel`` view, judged with the routing core."""
    issue, ch_name = name.rsplit(":", 1)
    channel = Channel(ch_name)
    rule = rule_for(rules, issue)
    waited_s = max(0.0, (now_ms - oldest_ms) / 1000) if oldest_ms is not None else 0.0
    step = rule.step_at(waited_s) if waiting else -1
    required_now = rule.required_at(waited_s if waiting else 0.0)
    required_new = rule.required_at(0.0)
    signed_in = available = slots = free = 0
    for agent in agents:
        if agent.state is AgentState.SIGNED_OUT or not agent.capacity.get(channel, 0):
            continue
        if has_skills(agent, required_now):
            signed_in += 1
            if agent.is_available and agent.free_slots(channel):
                available += 1
        if agent.is_available and has_skills(agent, required_new):
            slots += agent.capacity.get(channel, 0)
            free += agent.free_slots(channel)
    prefix = f"{issue}:{channel.value}:"
    handled = int(stats.get(prefix + "handled", 0))
    aht = int(stats.get(prefix + "handle_ms", 0)) / 1000 / handled if handled else None
    return QueueRow(
        issue=issue,
        channel=channel,
        waiting=waiting,
        oldest_ms=oldest_ms if waiting else None,
        answer_target_s=rule.target_s(channel),
        answered=int(stats.get(prefix + "answered", 0)),
        in_target=int(stats.get(prefix + "in_target", 0)),
        abandoned=int(stats.get(prefix + "abandoned", 0)),
        sl_target=rule.service_level,
        expected_wait_s=expected_wait(waiting, slots, free, aht).wait_s,
        eligible_available=available,
        eligible_signed_in=signed_in,
        step=step,
        step_text=_step_text(rule, step),
    )


async def read_snapshot(state: RedisState, store: WebStore, tenant: TenantId) -> Snapshot:
    """The tenant's floor now: queues, agents, the head of the queue, today's figures."""
    now_ms = await state.now_ms()
    day = today(now_ms / 1000)
    ids = await state.agent_ids(tenant)
    records = await state.read_agents(tenant, ids)
    agents = tuple(parse_agent(a, r) for a, r in zip(ids, records, strict=True) if r is not None)
    in_hand: dict[str, tuple[str, ...]] = {
        a: tuple(sorted(r.contacts)) for a, r in zip(ids, records, strict=True) if r is not None
    }
    rules = RuleBook(rule_from_json(raw) for raw in (await state.read_rules(tenant)).values())
    views, stats = await state.queue_views(tenant, day)
    head = await state.queue_head(tenant, WAITING_SHOWN)
    waiting = tuple(
        parse_contact(cid, fields)
        for cid, fields in zip(head, await state.read_contacts(tenant, head), strict=True)
        if fields and fields.get("status") == ContactStatus.QUEUED.value
    )
    rows = tuple(
        queue_row(rules, agents, stats, name, count, oldest, now_ms)
        for name, count, oldest in views
    )
    by_channel: dict[Channel, int] = {}
    for row in rows:
        by_channel[row.channel] = by_channel.get(row.channel, 0) + row.waiting
    totals = Totals(
        answered=sum(r.answered for r in rows),
        in_target=sum(r.in_target for r in rows),
        abandoned=sum(r.abandoned for r in rows),
    )
    volume = sum(r.answered + r.abandoned + r.waiting for r in rows)
    sl_target = (
        sum(r.sl_target * (r.answered + r.abandoned + r.waiting) for r in rows) / volume
        if volume
        else DEFAULT_SL_TARGET
    )
    skills = {s for a in agents for s in a.skills} | {s for r in rules for s in r.skills}
    return Snapshot(
        tenant=tenant,
        now_ms=now_ms,
        queues=tuple(r for r in rows if r.waiting or r.answered or r.abandoned),
        agents=agents,
        contacts_in_hand=in_hand,
        waiting=waiting,
        waiting_total=sum(r.waiting for r in rows),
        waiting_by_channel=by_channel,
        today=totals,
        window=await store.window(tenant, day, now_ms, totals),
        sl_target=sl_target,
        skills=tuple(sorted(skills)),
    )
