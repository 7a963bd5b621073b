"""The routing loop of one tenant on one replica: read, decide, commit.

Each replica keeps a mirror of the tenant's agents (a ``Floor``) and rules, refreshed
from Redis when a "changed" notice names an agent, and in full every few seconds. The
mirror only has to be good enough to decide well: every decision is re-checked by the
reserve_offer script against the live state (availability, free slot, the agent's
profile version), so a stale mirror costs a retry, never a wrong assignment. Several
replicas may route the same tenant at once; the scripts make sure each contact goes to
one agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import structlog
from opentelemetry.trace import Span

from queues.records import ContactRecord, parse_agent, parse_contact, rule_from_json
from queues.state import RedisState, Reservation
from router import tracing
from router.assign import Decision, Floor, rule_for
from router.domain import AgentId, Channel, ContactStatus, TenantId
from router.explain import explanation
from router.explain import to_json as explain_json
from router.ids import new_id
from router.policy import JointMode, Routed, decide
from router.rules import RuleBook
from router.signals import SignalSource
from router.tasks import stop_tasks

if TYPE_CHECKING:
    from router.config import Settings

log = structlog.get_logger(__name__)

_RELOAD_SLICE = 100
#: With a queue longer than a pass reads, the oldest contacts of each issue and channel
#: that a pass also reads.
VIEW_HEAD = 8

#: A reservation's answer, as a decision span tells it.
_RESULTS = {
    1: "routed",
    0: "contact_taken",
    -1: "agent_full",
    -2: "agent_changed",
    -6: "reconciling",
}


class TenantRouter:
    """Routes one tenant's queue from this replica."""

    def __init__(
        self,
        tenant: TenantId,
        state: RedisState,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tenant = tenant
        self._state = state
        self._settings = settings
        self._clock = clock
        self.floor = Floor()
        self.rules = RuleBook()
        self._contacts: dict[str, ContactRecord] = {}
        self._dirty_agents: set[AgentId] = set()
        self._rules_dirty = True
        self._rules_lock = asyncio.Lock()
        self._full_refresh_at = 0.0
        self._wake = asyncio.Event()
        self._stopping = False
        self._paused_until = 0.0
        self._task: asyncio.Task[None] | None = None
        self._signals = SignalSource(state, tenant)
        self._joint_mode = JointMode(settings.joint_assignment)
        #: The routing pass in flight, which ``stop`` lets finish its commits.
        self._pass: asyncio.Future[bool] | None = None
        #: Contacts this pass is reserving, and those of their offers whose notice came
        #: before the reply: Redis writes a script's notices to subscribers before its
        #: reply, and a notice carries the agent's load with the offer already counted.
        self._reserving: set[str] = set()
        self._noticed: set[tuple[str, int]] = set()
        self.passes = 0
        self.routed = 0
        #: Redis clock minus local clock, seconds (set by the engine).
        self.clock_offset_s = 0.0

    def now(self) -> float:
        """The time on Redis's clock, as this replica best knows it."""
        return self._clock() + self.clock_offset_s

    # --- notices ----------------------------------------------------------------------

    def wake(self) -> None:
        """Something may be routable: run a pass soon."""
        self._wake.set()

    def agent_changed(self, agent_id: AgentId) -> None:
        """Re-read this agent before the next pass."""
        self._dirty_agents.add(agent_id)
        self._wake.set()

    def rules_changed(self) -> None:
        """Re-read the rules before the next pass."""
        self._rules_dirty = True
        self._wake.set()

    def force_full_refresh(self) -> None:
        """Re-read every agent before the next pass (after notices may have been lost)."""
        self._full_refresh_at = 0.0
        self._wake.set()

    def load_changed(
        self,
        agent_id: AgentId,
        load: Mapping[str, int],
        version: int | None = None,
        offer: tuple[str, int] | None = None,
    ) -> None:
        """A notice carried the agent's load after a change: apply it to the mirror
        without reading the agent (unless the mirror lacks it or has another version).
        `offer`: the (contact, token) of the offer the notice announces."""
        if offer is not None and offer[0] in self._reserving:
            self._noticed.add(offer)  # counted here: the reply must not count it again
        agent = self.floor.get(agent_id)
        if agent is None or (version is not None and version != agent.version):
            self.agent_changed(agent_id)
            return
        try:
            new_load = {Channel(ch): int(n) for ch, n in load.items() if int(n)}
        except ValueError:
            self.agent_changed(agent_id)
            return
        self.floor.put(replace(agent, load=new_load))
        self._wake.set()

    def pause_until(self, until: float) -> None:
        """No routing before `until` (seconds, Redis clock): the tenant is reconciling after
        a Redis restart. reserve_offer refuses meanwhile anyway; this saves the passes."""
        self._paused_until = max(self._paused_until, until)
        self.force_full_refresh()  # the restart may have lost notices: re-read the floor

    def remember(self, record: ContactRecord) -> None:
        """A contact this replica just queued: route it without reading it back."""
        self._contacts[record.id] = record

    def contact_changed(self, contact_id: str) -> None:
        """Forget what this replica cached of a contact (it was requeued or closed)."""
        self._contacts.pop(contact_id, None)

    # --- loop -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop as a background task."""
        if self._task is None:
            # A fresh context: the loop must not inherit the log context of the request
            # that happened to create it.
            self._task = asyncio.create_task(
                self._run(), name=f"router:{self.tenant}", context=contextvars.Context()
            )

    async def stop(self) -> None:
        """Stop between passes: a pass in flight finishes its commits first."""
        self._stopping = True
        if self._task is not None:
            await stop_tasks([self._task])
            self._task = None
        if self._pass is not None and not self._pass.done():
            # The shield kept it running past the cancel: wait (bounded), or it would use a
            # closed Redis client after the replica stops.
            await asyncio.wait([self._pass], timeout=5.0)
            if self._pass.done() and not self._pass.cancelled():
                self._pass.exception()

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._settings.tick_s)
            self._wake.clear()
            try:
                self._pass = asyncio.ensure_future(self.route_once())
                retry = await asyncio.shield(self._pass)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop must survive Redis hiccups
                log.warning("routing_pass_failed", tenant=self.tenant, error=repr(exc))
                await asyncio.sleep(0.2)
                continue
            if retry:
                self._wake.set()

    async def route_once(self) -> bool:
        """One pass: refresh the mirror, decide for the queue head, commit. Returns
        whether another pass is worth running at once (some commit lost a race)."""
        self.passes += 1
        if self.now() < self._paused_until:
            self._wake.set()  # looked at again when the tick ends, until the pause ends
            await asyncio.sleep(min(self._settings.tick_s, self._paused_until - self.now()))
            return False
        await self._refresh()
        if self.floor.available_count == 0:
            return False
        head = await self._state.queue_head(self.tenant, self._settings.queue_scan)
        if not head:
            return False
        if len(head) >= self._settings.queue_scan:
            # The queue is longer than one pass reads: contacts nobody can take now (say,
            # e-mails with every e-mail slot full) must not hide those of other issues and
            # channels behind them. Add the oldest few of every issue and channel.
            seen = set(head)
            for cid in await self._state.view_heads(self.tenant, VIEW_HEAD):
                if cid not in seen:
                    seen.add(cid)
                    head.append(cid)
        missing = [cid for cid in head if cid not in self._contacts]
        for cid, fields in zip(
            missing, await self._state.read_contacts(self.tenant, missing), strict=True
        ):
            if fields:
                self._contacts[cid] = parse_contact(cid, fields)
        waiting = [
            self._contacts[cid].contact
            for cid in head
            if cid in self._contacts and self._contacts[cid].status is ContactStatus.QUEUED
        ]
        now = self.now()
        waiting = await self._signals.annotate(waiting, self.floor, self.rules, now)
        routed = decide(waiting, self.floor, self.rules, now, self._joint_mode)
        if not routed:
            return False
        decisions = [r.decision for r in routed]
        whys = [self._explanation(r, now) for r in routed]
        reservations = [
            Reservation(
                contact_id=d.contact.id,
                issue=d.contact.issue,
                channel=d.contact.channel,
                agent_id=d.agent.id,
                agent_version=d.agent.version,
                nonce=new_id(),
                reason=why["summary"],
                explanation=explain_json(why),
            )
            for d, why in zip(decisions, whys, strict=True)
        ]
        spans = [self._span(d, why, now) for d, why in zip(decisions, whys, strict=True)]
        self._reserving = {r.contact_id for r in reservations}
        try:
            results = await self._state.reserve(
                self.tenant, reservations, int(self._settings.offer_timeout_s * 1000), spans
            )
            lost = False
            for decision, reservation, result, why, span in zip(
                decisions, reservations, results, whys, spans, strict=True
            ):
                token = int(result.values[0]) if result.ok and result.values else 0
                counted = (reservation.contact_id, token) in self._noticed
                # In the decision's span, so that its log line carries the contact's trace.
                with tracing.ending(span, {"omniroute.result": _RESULTS.get(result.code, "")}):
                    lost |= self._apply(decision, reservation, result.code, now, why, counted)
        finally:
            self._reserving, self._noticed = set(), set()
        return lost

    def _span(self, decision: Decision, why: dict[str, Any], now: float) -> Span | None:
        """The decision's span, a child of the contact's submit (None: tracing is off)."""
        if tracing.tracer() is None:
            return None
        contact, agent = decision.contact, decision.agent
        record = self._contacts.get(contact.id)
        return tracing.decision_span(
            record.trace_parent if record is not None else "",
            {
                "omniroute.tenant": self.tenant,
                "omniroute.contact_id": contact.id,
                "omniroute.agent_id": agent.id,
                "omniroute.issue": contact.issue,
                "omniroute.channel": contact.channel.value,
                "omniroute.waited_s": round(contact.waited_s(now), 3),
                "omniroute.score": round(decision.score.total, 4),
                "omniroute.candidates": decision.considered,
                "omniroute.eligible": decision.eligible,
                "omniroute.relaxation_step": decision.step,
                "omniroute.joint": bool(why["joint"]),
            },
        )

    def _explanation(self, routed: Routed, now: float) -> dict[str, Any]:
        """The structured explanation of one decision of this pass (``router.explain``)."""
        d = routed.decision
        return explanation(
            d,
            rule_for(self.rules, d.contact.issue),
            self.floor,
            now,
            joint=routed.joint,
            hold=routed.hold,
            top=self._settings.explain_candidates,
        )

    def _apply(
        self,
        decision: Decision,
        reservation: Reservation,
        code: int,
        now: float,
        why: dict[str, Any] | None = None,
        counted: bool = False,
    ) -> bool:
        """Note a reservation's outcome in the mirror; `counted`: its notice, applied
        already, carried the agent's load with this offer in it."""
        contact, agent = decision.contact, decision.agent
        self._contacts.pop(contact.id, None)
        if code == 1:
            self.routed += 1
            self.floor.reserve(agent.id, contact.channel, now)  # and idle from now
            if counted:
                self.floor.release(agent.id, contact.channel)
            log.info(
                "contact_routed",
                tenant=self.tenant,
                contact_id=contact.id,
                agent_id=agent.id,
                issue=contact.issue,
                channel=contact.channel.value,
                waited_s=round(contact.waited_s(now), 3),
                score=round(decision.score.total, 4),
                components=decision.score.components(),
                candidates=decision.considered,
                eligible=decision.eligible,
                runner_up=decision.runner_up[0] if decision.runner_up else None,
                relaxation_step=decision.step,
                required=dict(decision.required),
                joint=bool(why and why["joint"]),
                explanation=why,
            )
            return False
        reason = _RESULTS.get(code, str(code))
        log.debug(
            "reservation_refused",
            tenant=self.tenant,
            contact_id=contact.id,
            agent_id=agent.id,
            reason=reason,
        )
        if code in (-1, -2):
            self._dirty_agents.add(agent.id)
        if code == -6:  # reconciling after a Redis restart: look again shortly
            self._paused_until = max(self._paused_until, self.now() + self._settings.sweep_s)
        return True

    # --- mirror -----------------------------------------------------------------------

    async def refresh_rules(self) -> None:
        """Re-read the rules if a notice said they changed. One read at a time: a read
        begun before a rule was written must not land after the read that sees it (a
        submit right after CreateRoutingRule on this replica would miss the rule)."""
        async with self._rules_lock:
            if self._rules_dirty:
                self._rules_dirty = False
                raw = await self._state.read_rules(self.tenant)
                self.rules = RuleBook(rule_from_json(r) for r in raw.values())

    async def _refresh(self) -> None:
        await self.refresh_rules()
        wall = time.monotonic()
        if wall >= self._full_refresh_at:
            self._full_refresh_at = wall + self._settings.mirror_refresh_s
            ids = await self._state.agent_ids(self.tenant)
            self._dirty_agents.clear()
            await self._reload(ids)
            known = set(ids)
            for agent in [*self.floor, *self.floor.bots()]:
                if agent.id not in known:
                    self.floor.remove(agent.id)
        elif self._dirty_agents:
            ids = sorted(self._dirty_agents)
            self._dirty_agents.clear()
            await self._reload(ids)

    async def _reload(self, ids: list[AgentId]) -> None:
        # In slices, yielding between them: a full refresh of a large floor must not hold
        # the event loop (1,000 agents are ~3,000 replies to parse).
        for start in range(0, len(ids), _RELOAD_SLICE):
            chunk = ids[start : start + _RELOAD_SLICE]
            records = await self._state.read_agents(self.tenant, chunk)
            for agent_id, record in zip(chunk, records, strict=True):
                if record is None:
                    self.floor.remove(agent_id)
                else:
                    self.floor.put(parse_agent(agent_id, record))
            await asyncio.sleep(0)
