"""Use cases of the live service: submit, cancel, accept, decline, complete, presence.

Each one reads what it needs, decides with the pure core, and commits through one
``RedisState`` script that re-checks the decision. Supervisor use cases live in
``router.supervision``; the per-tenant routing loop in ``router.dispatch``; the fan-out
of Redis notices to this replica's routers and streams in ``router.hub``.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, NoReturn

import structlog

from queues.records import (
    ContactRecord,
    HistoryItem,
    contact_fields,
    history_entry,
    parse_contact,
    parse_history,
)
from queues.state import RedisState, ScriptResult
from router import tracing
from router.assign import rule_for
from router.config import Settings
from router.customers import merge_customers
from router.dispatch import TenantRouter
from router.domain import (
    MAX_CALLBACK_AHEAD_S,
    AgentId,
    AgentState,
    Channel,
    Contact,
    ContactId,
    ContactStatus,
    CustomerId,
    TenantId,
)
from router.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from router.history import HistoryFacts, history_facts, repeat_counters, shaped
from router.hub import Hub
from router.ids import new_id
from router.rules import RuleBook
from router.tasks import stop_tasks

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CustomerView:
    """A customer with identities and newest-first history."""

    id: CustomerId
    identities: tuple[tuple[str, str], ...]
    history: tuple[HistoryItem, ...]
    created_ms: int


@dataclass(frozen=True, slots=True)
class OfferView:
    """An offer as an agent receives it."""

    agent_id: AgentId
    record: ContactRecord
    customer: CustomerView | None
    #: The agent holds the contact (accepted), rather than having it on offer.
    held: bool = False

    @property
    def key(self) -> tuple[str, int, bool]:
        """What a stream sends once: (contact, token, held)."""
        return (self.record.id, self.record.token, self.held)


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """Notice that an offer is no longer open."""

    agent_id: AgentId
    contact_id: ContactId
    token: int
    reason: str


@dataclass(frozen=True, slots=True)
class Reconciling:
    """Notice that the tenant reconciles after a Redis restart until `until_ms`."""

    until_ms: int


_day_cache: dict[int, str] = {}


def today(now_s: float) -> str:
    """The UTC day (``yyyymmdd``) that today's counters are kept under."""
    day = int(now_s // 86400)
    text = _day_cache.get(day)
    if text is None:
        text = datetime.fromtimestamp(day * 86400, UTC).strftime("%Y%m%d")
        _day_cache.clear()
        _day_cache[day] = text
    return text


def _pairs(flat: Any) -> dict[str, str]:
    """A flattened hash reply (``[k1, v1, k2, v2, ...]``) as a dict."""
    items = list(flat)
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items), 2)}


class Engine:
    """The live service's use cases, shared by every servicer of one replica."""

    def __init__(
        self, state: RedisState, settings: Settings, clock: Callable[[], float] = time.time
    ) -> None:
        self.state = state
        self.settings = settings
        self.clock = clock
        self.routers: dict[TenantId, TenantRouter] = {}
        self.hub = Hub(self)
        self._known_tenants: set[TenantId] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.clock_offset_s = 0.0
        self._stopping = False
        #: Run id of the Redis process last seen holding each tenant (check_restarts).
        self._run_ids: dict[TenantId, str] = {}
        #: Customer of each contact accepted through this replica, until completed.
        self._held: dict[ContactId, CustomerId | None] = {}
        #: Called when API keys change anywhere (to drop authentication caches).
        self.key_listeners: list[Callable[[], None]] = []
        #: Called with the tenant when its rate limit changes anywhere.
        self.limit_listeners: list[Callable[[TenantId], None]] = []

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Load scripts, sync the clock, start the notice listener and the sweeper."""
        await self.state.load_scripts()
        await self.sync_clock()
        for tenant in await self.state.tenants():
            if await self.state.index_skills(tenant):  # once: data from before the counts
                log.info("skill_catalogue_counted", tenant=tenant)
            self.router(tenant)
        clean = contextvars.Context
        self._tasks.append(asyncio.create_task(self.hub.run(), name="hub", context=clean()))
        self._tasks.append(
            asyncio.create_task(self._sweep_forever(), name="sweeper", context=clean())
        )
        await self.hub.ready.wait()

    async def stop(self) -> None:
        """Stop routing (passes in flight finish their commits); offers stay in Redis."""
        self._stopping = True
        for router in list(self.routers.values()):  # a request may add one meanwhile
            await router.stop()
        await stop_tasks(self._tasks)
        self._tasks.clear()

    async def sync_clock(self) -> None:
        """Measure Redis's clock against ours, so waits are measured on Redis's clock."""
        before = self.clock()
        redis_ms = await self.state.now_ms()
        after = self.clock()
        self.clock_offset_s = redis_ms / 1000.0 - (before + after) / 2
        for router in self.routers.values():
            router.clock_offset_s = self.clock_offset_s

    def now(self) -> float:
        """Redis's clock as this replica best knows it (seconds)."""
        return self.clock() + self.clock_offset_s

    def router(self, tenant: TenantId) -> TenantRouter:
        """This replica's router of `tenant`, started on first use."""
        router = self.routers.get(tenant)
        if router is None:
            router = TenantRouter(tenant, self.state, self.settings, self.clock)
            router.clock_offset_s = self.clock_offset_s
            self.routers[tenant] = router
            router.start()
        return router

    async def _touch_tenant(self, tenant: TenantId) -> TenantRouter:
        if tenant not in self._known_tenants:
            await self.state.register_tenant(tenant)
            self._known_tenants.add(tenant)
        return self.router(tenant)

    # --- contacts ---------------------------------------------------------------------

    async def submit(
        self,
        tenant: TenantId,
        draft: Contact,
        identities: Sequence[tuple[str, str]],
        request_id: str,
    ) -> ContactRecord:
        """Queue a contact from any channel; resolve its customer and history hints."""
        router = await self._touch_tenant(tenant)
        rules = await self.rules_of(tenant)
        if rules.for_issue(draft.issue) is None:
            raise Conflict(
                f"contact.issue: no routing rule for issue {draft.issue!r} and no 'default' "
                "rule; create one with SupervisorService.CreateRoutingRule"
            )
        rule = rule_for(rules, draft.issue)
        digest = _digest(draft, identities)
        if request_id:
            # Answer a replay before touching anything (the script re-checks atomically).
            first = await self.state.idempotency_record(tenant, "SubmitContact", request_id)
            if first is not None:
                if first[0] != digest:
                    raise AlreadyExists(
                        "request_id: already used with a different contact; use a new "
                        "idempotency key"
                    )
                return await self.get_contact(tenant, ContactId(first[1]))
        customer_id: CustomerId | None = None
        facts = HistoryFacts()
        if identities:
            customer_id, history = await self._resolve_customer(tenant, identities)
            facts = history_facts(history, draft, rule, self.now())
        contact = replace(
            shaped(draft, facts, rule),
            id=ContactId(new_id()),
            customer_id=customer_id,
            bot_first=rule.bot_first,
        )
        last_agent = facts.last_agent_id
        target_ms = int(rule.target_s(contact.channel) * 1000)
        trace_parent = tracing.current_traceparent()  # '' when tracing is off
        result = await self.state.enqueue(
            tenant,
            contact.id,
            contact_fields(contact, tuple(identities)),
            contact.issue,
            contact.channel,
            contact.priority,
            target_ms,
            request_id,
            digest,
            trace_parent,
        )
        if result.code == -1:
            raise AlreadyExists(
                "request_id: already used with a different contact; use a new idempotency key"
            )
        if result.code != 1:  # the same request again: its first answer, as it is now
            return await self.get_contact(tenant, ContactId(str(result.values[0])))
        record = ContactRecord(
            contact=replace(contact, arrived_at=int(result.values[1]) / 1000.0),
            status=ContactStatus.QUEUED,
            target_ms=target_ms,
            identities=tuple(identities),
            attributes=dict(draft.attributes),
            trace_parent=trace_parent,
        )
        router.remember(record)
        router.wake()
        if facts.repeat:
            await self.state.count(tenant, today(self.now()), repeat_counters(contact, facts))
        log.info(
            "contact_queued",
            tenant=tenant,
            contact_id=contact.id,
            issue=contact.issue,
            channel=contact.channel.value,
            priority=contact.priority,
            customer_id=customer_id,
            last_agent=last_agent,
            repeat=facts.repeat,
        )
        return record

    async def _resolve_customer(
        self, tenant: TenantId, identities: Sequence[tuple[str, str]]
    ) -> tuple[CustomerId, list[HistoryItem]]:
        """The customer the identities resolve to (created if new) and its history."""
        for _ in range(5):
            owners = await self.state.identity_owners(tenant, identities)
            found = [o for o in owners if o]
            customer = CustomerId(found[0] if found else "cu" + new_id()[:14])
            result = await self.state.resolve_customer(tenant, customer, identities, owners)
            if result.ok:
                if len(set(found)) > 1:
                    # Two identities known as two customers: one person; merge them
                    # (atomically, audited) and resolve again to read the merged history.
                    for other in sorted(set(found) - {customer}):
                        await merge_customers(
                            self.state, tenant, customer, CustomerId(other), "system:submit"
                        )
                    continue
                return customer, [parse_history(str(r)) for r in result.values[1:]]
        raise Conflict("contact.identities: changed concurrently too often; retry")

    async def get_contact(self, tenant: TenantId, contact_id: ContactId) -> ContactRecord:
        """One contact, NotFound if unknown here."""
        fields = await self.state.read_contact(tenant, contact_id)
        if not fields:
            raise NotFound(f"contact {contact_id!r} not found")
        return parse_contact(contact_id, fields)

    async def cancel(self, tenant: TenantId, contact_id: ContactId, reason: str) -> ContactRecord:
        """The customer left: withdraw a waiting or offered contact."""
        for _ in range(5):
            record = await self.get_contact(tenant, contact_id)
            offered_to = record.agent_id if record.status is ContactStatus.OFFERED else None
            entry = history_entry(record, ContactStatus.ABANDONED, "", reason)
            result = await self.state.abandon(
                tenant,
                contact_id,
                offered_to,
                reason,
                entry,
                record.contact.customer_id,
                record.contact.issue,
                record.contact.channel,
                today(self.now()),
            )
            if result.ok:
                self.router(tenant).wake()
                return await self.get_contact(tenant, contact_id)
            if result.code == -3:
                raise Conflict(
                    f"contact {contact_id!r} is {result.values[0]}: only a waiting or offered "
                    "contact can be cancelled"
                )
            if result.code == -4:
                raise NotFound(f"contact {contact_id!r} not found")
        raise Conflict(f"contact {contact_id!r} changed concurrently too often; retry")

    async def watch_contact(
        self, tenant: TenantId, contact_id: ContactId
    ) -> AsyncIterator[tuple[str, ContactRecord]]:
        """The contact now, then after every change, until it is closed."""
        queue = self.hub.watch_contact(tenant, contact_id)
        try:
            record = await self.get_contact(tenant, contact_id)
            yield record.status.value, record
            last = (record.status, record.token)
            while record.status.is_open:
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=5.0)
                    name = str(event.get("ev", "changed"))
                except TimeoutError:
                    name = "changed"
                record = await self.get_contact(tenant, contact_id)
                if (record.status, record.token) != last:
                    last = (record.status, record.token)
                    # A notice may be older than the state read after it (notices and
                    # reads travel on different connections): name the event after the
                    # state, keeping the notice's name only when it says the same.
                    agrees = _NOTICE_STATUS.get(name) is record.status
                    yield name if agrees else record.status.value, record
        finally:
            self.hub.unwatch_contact(tenant, contact_id, queue)

    # --- offers -----------------------------------------------------------------------

    async def accept(
        self, tenant: TenantId, agent_id: AgentId, contact_id: ContactId, token: int
    ) -> ContactRecord:
        """The agent takes the offer, if it is still theirs with this token."""
        result = await self.state.accept(tenant, contact_id, agent_id, token, today(self.now()))
        if not result.ok and result.code in (-3, -5):
            result = await self._reassert(tenant, agent_id, contact_id, token, result)
        if not result.ok:
            await self._offer_refused(tenant, agent_id, contact_id, token, result)
        record = parse_contact(contact_id, _pairs(result.values[0]))
        tracing.link_contact(record.trace_parent)
        self._held[contact_id] = record.contact.customer_id
        if len(self._held) > 100_000:
            self._held.clear()
        log.info("offer_accepted", tenant=tenant, contact_id=contact_id, agent_id=agent_id)
        return record

    async def decline(
        self, tenant: TenantId, agent_id: AgentId, contact_id: ContactId, token: int
    ) -> ContactRecord:
        """The agent refuses the offer: the contact returns ahead of newer ones."""
        record = await self._offer_record(tenant, agent_id, contact_id)
        result = await self.state.release(
            tenant,
            contact_id,
            agent_id,
            token,
            record.contact.issue,
            record.contact.channel,
            "declined",
            self.settings.max_missed_offers,
        )
        self._check_offer_result(result, contact_id, token)
        tracing.link_contact(record.trace_parent)
        self.router(tenant).wake()
        log.info("offer_declined", tenant=tenant, contact_id=contact_id, agent_id=agent_id)
        return await self.get_contact(tenant, contact_id)

    async def complete(
        self,
        tenant: TenantId,
        agent_id: AgentId,
        contact_id: ContactId,
        token: int,
        outcome: str,
        note: str,
        satisfaction: int | None = None,
    ) -> ContactRecord:
        """The agent finishes an accepted contact (with the customer's `satisfaction`, 1-5,
        when the platform reports one); it enters the customer's history."""
        if contact_id in self._held:
            customer_id = self._held.pop(contact_id)
        else:
            customer_id = (
                await self._offer_record(tenant, agent_id, contact_id)
            ).contact.customer_id
        entry = {
            "contact": contact_id,
            "agent": agent_id,
            "outcome": outcome,
            "note": note,
            "status": ContactStatus.COMPLETED.value,
        }

        async def commit() -> ScriptResult:
            return await self.state.complete(
                tenant,
                contact_id,
                agent_id,
                token,
                outcome,
                note,
                entry,
                customer_id,
                today(self.now()),
                satisfaction,
            )

        result = await commit()
        if result.code == -3 and result.values and result.values[0] in ("queued", "offered"):
            # After a Redis restart lost the accept: re-assert it, then complete.
            again = await self._reassert(tenant, agent_id, contact_id, token, result)
            if again.ok:
                result = await commit()
        if result.code == -3 and result.values and result.values[0] == "offered":
            raise Conflict(f"offer of contact {contact_id!r} is not accepted yet")
        if not result.ok:
            await self._offer_refused(tenant, agent_id, contact_id, token, result)
        record = parse_contact(contact_id, _pairs(result.values[0]))
        tracing.link_contact(record.trace_parent)
        self.router(tenant).wake()
        log.info(
            "contact_completed",
            tenant=tenant,
            contact_id=contact_id,
            agent_id=agent_id,
            outcome=outcome,
            satisfaction=satisfaction,
        )
        return record

    # --- bots and callbacks -----------------------------------------------------------

    async def escalate(
        self, tenant: TenantId, contact_id: ContactId, token: int, summary: str
    ) -> ContactRecord:
        """A bot hands the contact it holds to people: back in the queue at the place its
        arrival and priority give it, for people only, with the bot's `summary` on it and in
        the customer's history (one script: never lost, never in two places)."""
        fields = await self.state.read_contact(tenant, contact_id)
        if not fields:
            raise NotFound(f"name: contact {contact_id!r} not found")
        record = parse_contact(contact_id, fields)
        # Once escalated, no bot may hold it again: a repeat names the same bot.
        bot_id = record.escalated_by or record.agent_id
        if bot_id is None:
            raise Conflict(
                f"name: contact {contact_id!r} is {record.status.value} and held by no bot; "
                "only the bot holding a contact can escalate it"
            )
        entry = {
            "contact": contact_id,
            "agent": bot_id,
            "outcome": "transferred",
            "note": summary,
            "status": ContactStatus.COMPLETED.value,
        }
        result = await self.state.escalate(
            tenant,
            contact_id,
            bot_id,
            token,
            summary,
            entry,
            record.contact.customer_id,
            record.contact.issue,
            record.contact.channel,
            today(self.now()),
        )
        if result.code == -4:
            raise NotFound(f"name: contact {contact_id!r} not found")
        if result.code == -9:
            raise Conflict(
                f"name: contact {contact_id!r} is held by agent {bot_id!r}, who is not a bot; "
                "a person completes it (AgentService.CompleteContact)"
            )
        if not result.ok:
            status = result.values[0] if result.values else "unknown"
            raise Conflict(
                f"token: contact {contact_id!r} is not held by bot {bot_id!r} with token "
                f"{token} (it is {status}; a bot accepts before it escalates; the token may "
                "be stale)"
            )
        self._held.pop(contact_id, None)
        router = self.router(tenant)
        router.contact_changed(contact_id)
        router.wake()
        escalated = parse_contact(contact_id, _pairs(result.values[0]))
        log.info(
            "contact_escalated",
            tenant=tenant,
            contact_id=contact_id,
            bot_id=bot_id,
            summary_bytes=len(summary.encode()),
        )
        return escalated

    async def request_callback(
        self, tenant: TenantId, contact_id: ContactId, at_s: float | None
    ) -> ContactRecord:
        """A waiting caller asks to be called back: at its place in the queue (`at_s`
        None), or at the time they chose, out of the queue until then."""
        at_ms = 0
        if at_s is not None:
            now = self.now()
            if at_s <= now:
                raise InvalidArgument(
                    "callback_time", f"must be in the future (it is {now - at_s:.0f} s past)"
                )
            if at_s > now + MAX_CALLBACK_AHEAD_S:
                raise InvalidArgument(
                    "callback_time", f"at most {MAX_CALLBACK_AHEAD_S // 86400} days ahead"
                )
            at_ms = int(at_s * 1000)
        fields = await self.state.read_contact(tenant, contact_id)
        if not fields:
            raise NotFound(f"name: contact {contact_id!r} not found")
        record = parse_contact(contact_id, fields)
        channel = record.contact.channel
        if channel is not Channel.VOICE:
            raise Conflict(
                f"name: contact {contact_id!r} is a {channel.value} contact; only a waiting "
                "voice contact (a caller) can ask for a callback"
            )
        result = await self.state.request_callback(
            tenant, contact_id, record.contact.issue, channel, at_ms
        )
        if result.code == -4:
            raise NotFound(f"name: contact {contact_id!r} not found")
        if not result.ok:
            status = result.values[0] if result.values else "unknown"
            raise Conflict(
                f"name: contact {contact_id!r} is {status}; only a waiting contact can ask "
                "for a callback"
            )
        router = self.router(tenant)
        router.contact_changed(contact_id)
        router.wake()
        log.info("callback_requested", tenant=tenant, contact_id=contact_id, at_ms=at_ms)
        return parse_contact(contact_id, _pairs(result.values[0]))

    async def _callback_due(self, tenant: TenantId, contact_id: ContactId) -> None:
        """Queue a callback whose time has come (any replica may; the script decides)."""
        fields = await self.state.read_contact(tenant, contact_id)
        if not fields:
            await self.state.forget_callback(tenant, contact_id)
            return
        record = parse_contact(contact_id, fields)
        result = await self.state.callback_due(
            tenant, contact_id, record.contact.issue, record.contact.channel
        )
        if result.ok:
            self.router(tenant).wake()
            log.info("callback_due", tenant=tenant, contact_id=contact_id)

    async def _reassert(
        self,
        tenant: TenantId,
        agent_id: AgentId,
        contact_id: ContactId,
        token: int,
        refused: ScriptResult,
    ) -> ScriptResult:
        """An accept (or complete) refused: if the tenant is reconciling after a Redis
        restart and the token predates it, the agent holds the contact and the restart lost
        that; assign it to them again (reassert_offer.lua). Else the refusal stands."""
        for _ in range(3):
            fields = await self.state.read_contact(tenant, contact_id)
            if not fields:
                return refused
            record = parse_contact(contact_id, fields)
            result = await self.state.reassert(
                tenant, contact_id, agent_id, token, record.contact.issue, record.contact.channel
            )
            if result.code == -7:  # it changed under us: read again
                continue
            if result.ok:
                log.warning(
                    "contact_reasserted",
                    tenant=tenant,
                    contact_id=contact_id,
                    agent_id=agent_id,
                    token=token,
                    was=record.status.value,
                )
                self.router(tenant).contact_changed(contact_id)
                return result
            return refused
        return refused

    async def _offer_refused(
        self,
        tenant: TenantId,
        agent_id: AgentId,
        contact_id: ContactId,
        token: int,
        result: ScriptResult,
    ) -> NoReturn:
        """Raise the error a refused accept, decline or complete deserves: NotFound when
        the offer was never this agent's (or either does not exist), else Conflict."""
        await self._offer_record(tenant, agent_id, contact_id)
        self._check_offer_result(result, contact_id, token)
        raise Conflict(f"offer of contact {contact_id!r} is not open for this agent")

    async def _offer_record(
        self, tenant: TenantId, agent_id: AgentId, contact_id: ContactId
    ) -> ContactRecord:
        fields = await self.state.read_contact(tenant, contact_id)
        if not fields:
            raise NotFound(f"offer of contact {contact_id!r} to agent {agent_id!r} not found")
        record = parse_contact(contact_id, fields)
        if record.agent_id != agent_id:
            await self.require_agent(tenant, agent_id)
            raise Conflict(
                f"contact {contact_id!r} is not offered to or held by agent {agent_id!r}"
            )
        return record

    @staticmethod
    def _check_offer_result(result: ScriptResult, contact_id: ContactId, token: int) -> None:
        if result.ok:
            return
        if result.code == -4:
            raise NotFound(f"contact {contact_id!r} not found")
        if result.code == -5:
            raise Conflict(f"offer of contact {contact_id!r} expired")
        status = result.values[0] if result.values else "unknown"
        raise Conflict(
            f"offer of contact {contact_id!r} with token {token} is not open for this agent "
            f"(contact is {status}; the token may be stale)"
        )

    async def release_expired(self, tenant: TenantId, contact_id: str) -> None:
        """Return an expired offer to the queue (any replica may; the script decides)."""
        fields = await self.state.read_contact(tenant, ContactId(contact_id))
        if not fields or fields.get("status") != ContactStatus.OFFERED.value:
            return
        record = parse_contact(contact_id, fields)
        if record.agent_id is None:
            return
        result = await self.state.release(
            tenant,
            record.id,
            record.agent_id,
            record.token,
            record.contact.issue,
            record.contact.channel,
            "expired",
            self.settings.max_missed_offers,
        )
        if result.ok:
            log.info(
                "offer_expired",
                tenant=tenant,
                contact_id=contact_id,
                agent_id=record.agent_id,
                missed_in_a_row=result.values[0] if result.values else None,
            )

    async def pending_offers(
        self,
        tenant: TenantId,
        agent_id: AgentId,
        sent: Collection[tuple[str, int, bool]] = (),
    ) -> list[OfferView]:
        """Offers open for the agent now and contacts it holds (for a stream that just
        connected): a desktop that lost an accept's reply learns what it holds. Those in
        `sent` (contact, token, held), already on the caller's stream, are not read again:
        the stream looks every beat, and a held contact stays held until it is closed."""
        (record,) = await self.state.read_agents(tenant, [agent_id])
        if record is None:
            raise NotFound(f"agent {agent_id!r} not found")
        offers: list[OfferView] = []
        for contact_id, token in sorted(record.contacts.items()):
            if (contact_id, token, True) in sent:
                continue
            view = await self.offer_view(
                tenant, agent_id, ContactId(contact_id), held_too=True, sent=sent
            )
            if view is not None:
                offers.append(view)
        return offers

    async def offer_view(
        self,
        tenant: TenantId,
        agent_id: AgentId,
        contact_id: ContactId,
        *,
        held_too: bool = False,
        sent: Collection[tuple[str, int, bool]] = (),
    ) -> OfferView | None:
        """The offer of `contact_id` to `agent_id` with the customer's history, if open
        (or, with `held_too`, if the agent holds the contact) and not in `sent`."""
        fields = await self.state.read_contact(tenant, contact_id)
        if not fields:
            return None
        record = parse_contact(contact_id, fields)
        if record.agent_id != agent_id:
            return None
        held = record.status is ContactStatus.ASSIGNED
        if not (record.status is ContactStatus.OFFERED or (held_too and held)):
            return None
        if (record.id, record.token, held) in sent:
            return None  # on the stream already: spare the customer's history
        customer = None
        if record.contact.customer_id:
            customer = await self.customer(tenant, record.contact.customer_id)
        return OfferView(agent_id, record, customer, held=held)

    async def offers(
        self, tenant: TenantId, agent_id: AgentId
    ) -> AsyncIterator[OfferView | Withdrawal | Reconciling]:
        """The agent's offer stream: pending offers, then new ones and withdrawals. An
        open stream keeps the agent's presence alive."""
        await self.require_agent(tenant, agent_id)
        queue = self.hub.subscribe_offers(tenant, agent_id)
        sent: set[tuple[str, int, bool]] = set()
        try:
            next_beat = 0.0
            while True:
                if time.monotonic() >= next_beat:
                    await self.state.heartbeat(tenant, agent_id)
                    # Jittered, so that streams opened together do not all beat together.
                    period_s = self.settings.presence_timeout_s / 3
                    next_beat = time.monotonic() + period_s * random.uniform(0.8, 1.0)
                    for view in await self.pending_offers(tenant, agent_id, sent):
                        sent.add(view.key)
                        yield view
                try:
                    # Only the next beat needs a timeout; a cancelled stream ends at once.
                    wait_s = max(0.01, next_beat - time.monotonic())
                    event = await asyncio.wait_for(queue.get(), timeout=wait_s)
                except TimeoutError:
                    continue
                kind, cid, tok = event.get("ev"), str(event.get("c")), int(event.get("tok", 0))
                if kind in ("offered", "assigned") and (cid, tok, kind == "assigned") not in sent:
                    fresh = await self.offer_view(
                        tenant, agent_id, ContactId(cid), held_too=kind == "assigned", sent=sent
                    )
                    if fresh is not None and fresh.record.token == tok:
                        sent.add(fresh.key)
                        yield fresh
                elif kind == "recovering":
                    yield Reconciling(int(event.get("u", 0)))
                elif kind in ("requeued", "withdrawn"):
                    sent.discard((cid, tok, False))
                    yield Withdrawal(agent_id, ContactId(cid), tok, str(event.get("why", "")))
        finally:
            self.hub.unsubscribe_offers(tenant, agent_id, queue)

    # --- presence ---------------------------------------------------------------------

    async def require_agent(self, tenant: TenantId, agent_id: AgentId) -> None:
        """NotFound unless the agent exists."""
        (record,) = await self.state.read_agents(tenant, [agent_id])
        if record is None:
            raise NotFound(f"agent {agent_id!r} not found")

    async def set_state(
        self,
        tenant: TenantId,
        agent_id: AgentId,
        state: AgentState,
        reason: str,
        actor: str,
        *,
        sign_in: bool = False,
    ) -> None:
        """Sign in, go available or away, or sign out; offers of an agent who leaves
        return to the queue."""
        await self._touch_tenant(tenant)
        if state is AgentState.AWAY and not reason:
            raise InvalidArgument("away_reason", "required when the state is AWAY")
        if state is AgentState.SIGNED_OUT:
            result = await self._sign_out(tenant, agent_id, actor)
        else:
            result = await self.state.set_state(
                tenant, agent_id, state.value, reason, actor, sign_in=sign_in
            )
        if result.code == -4:
            raise NotFound(f"agent {agent_id!r} not found")
        if result.code == -3:
            raise Conflict(
                f"agent {agent_id!r} holds {result.values[0]} accepted contacts; complete "
                "them before signing out"
            )
        if state is AgentState.AWAY:
            await self._return_offers(tenant, agent_id, "withdrawn")
        self.router(tenant).agent_changed(agent_id)
        log.info(
            "agent_state_set",
            tenant=tenant,
            agent_id=agent_id,
            state=state.value,
            reason=reason,
            actor=actor,
        )

    async def _sign_out(self, tenant: TenantId, agent_id: AgentId, actor: str) -> ScriptResult:
        """Refuse, changing nothing, while the agent holds accepted contacts; else return its
        open offers and sign it out. An available agent is first set away (``signing_out``):
        while it is available, routing may offer a returned contact straight back to it, and
        the sign-out would be refused for a contact it never accepted."""
        (record,) = await self.state.read_agents(tenant, [agent_id])
        if record is None:
            raise NotFound(f"agent {agent_id!r} not found")
        available = record.fields.get("state") == AgentState.AVAILABLE.value
        if available:
            await self._return_offers(tenant, agent_id, "", refuse_if_held=True, release=False)
            await self.state.set_state(
                tenant, agent_id, AgentState.AWAY.value, "signing_out", actor
            )
        await self._return_offers(tenant, agent_id, "withdrawn", refuse_if_held=not available)
        result = await self.state.set_state(
            tenant, agent_id, AgentState.SIGNED_OUT.value, "", actor
        )
        if result.code == -3 and available:
            # It accepted an offer meanwhile: available again, as it was before the call.
            await self.state.set_state(tenant, agent_id, AgentState.AVAILABLE.value, "", actor)
        return result

    async def _return_offers(
        self,
        tenant: TenantId,
        agent_id: AgentId,
        why: str,
        *,
        refuse_if_held: bool = False,
        release: bool = True,
    ) -> None:
        """Return the agent's open offers to the queue; with `refuse_if_held`, first refuse
        (changing nothing) when the agent holds accepted contacts; without `release`, only
        that check."""
        (record,) = await self.state.read_agents(tenant, [agent_id])
        if record is None:
            raise NotFound(f"agent {agent_id!r} not found")
        ids = sorted(record.contacts)
        contacts = dict(zip(ids, await self.state.read_contacts(tenant, ids), strict=True))
        held = [c for c, f in contacts.items() if f.get("status") == ContactStatus.ASSIGNED.value]
        if refuse_if_held and held:
            raise Conflict(
                f"agent {agent_id!r} holds {len(held)} accepted contacts; complete them "
                "before signing out"
            )
        if not release:
            return
        for contact_id, fields in contacts.items():
            token = record.contacts[contact_id]
            if fields.get("status") != ContactStatus.OFFERED.value:
                continue
            rec = parse_contact(contact_id, fields)
            await self.state.release(
                tenant, rec.id, agent_id, token, rec.contact.issue, rec.contact.channel, why, 0
            )

    async def heartbeat(self, tenant: TenantId, agent_id: AgentId) -> AgentState:
        """Renew presence; Conflict if the agent is not signed in."""
        result = await self.state.heartbeat(tenant, agent_id)
        if result.code == -4:
            raise NotFound(f"agent {agent_id!r} not found")
        if result.code == 0:
            raise Conflict(f"agent {agent_id!r} is not signed in; call SignIn")
        return AgentState(str(result.values[0]))

    # --- sweeper ----------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        last_clock_sync = time.monotonic()
        while not self._stopping:
            await asyncio.sleep(self.settings.sweep_s)
            try:
                await self.sweep()
                if time.monotonic() - last_clock_sync > 30:
                    last_clock_sync = time.monotonic()
                    await self.sync_clock()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep sweeping through Redis hiccups
                log.warning("sweep_failed", error=repr(exc))

    async def sweep(self) -> None:
        """Expire overdue offers and sign out agents whose presence lapsed, every tenant.
        Every replica sweeps; the scripts make a second sweep of the same item a no-op."""
        tenants = await self.state.tenants()
        await self.check_restarts(tenants)
        for tenant in tenants:
            router = self.router(tenant)
            for contact_id in await self.state.due_offers(tenant):
                await self.release_expired(tenant, contact_id)
                router.wake()
            for contact_id in await self.state.due_callbacks(tenant):
                await self._callback_due(tenant, ContactId(contact_id))
            cutoff = int((self.now() - self.settings.presence_timeout_s) * 1000)
            for agent_id in await self.state.stale_agents(tenant, cutoff):
                await self._presence_lapsed(tenant, agent_id)

    async def check_restarts(self, tenants: Sequence[TenantId]) -> None:
        """Notice a Redis restart, failover or loss of data under any tenant: the first
        replica to notice starts the tenant's reconciliation (check_epoch.lua): routing
        pauses for the hold while desktops re-assert what they hold, and offer tokens
        jump above every token issued before, so no write fenced before can match."""
        run_ids = await self.state.run_ids(tenants)
        hold_ms = int(self.settings.recovery_hold_s * 1000)
        for tenant, run_id in run_ids.items():
            if self._run_ids.get(tenant) == run_id:
                continue
            result = await self.state.check_epoch(tenant, run_id, hold_ms)
            self._run_ids[tenant] = run_id
            if result.code == 1:
                until_ms, previous = int(result.values[0]), str(result.values[1])
                self.router(tenant).pause_until(until_ms / 1000)
                log.warning(
                    "redis_restart_reconciling",
                    tenant=tenant,
                    run_id=run_id,
                    previous_run_id=previous,
                    hold_s=self.settings.recovery_hold_s,
                )

    async def _presence_lapsed(self, tenant: TenantId, agent_id: AgentId) -> None:
        log.warning("agent_presence_lapsed", tenant=tenant, agent_id=agent_id)
        try:
            await self.set_state(tenant, agent_id, AgentState.SIGNED_OUT, "", "system")
        except Conflict:
            # Still holds accepted contacts: stop new offers, keep the contacts.
            await self.set_state(
                tenant, agent_id, AgentState.AWAY, "presence_lost", "system", sign_in=False
            )
            await self.state.forget_presence(tenant, agent_id)
        except NotFound:
            await self.state.forget_presence(tenant, agent_id)

    # --- customers and rules ----------------------------------------------------------

    async def customer(self, tenant: TenantId, customer_id: CustomerId) -> CustomerView:
        """A customer with newest-first history; NotFound if unknown."""
        fields, raw = await self.state.read_customer(
            tenant, customer_id, self.settings.history_length
        )
        if not fields:
            raise NotFound(f"customer {customer_id!r} not found")
        ids = json.loads(fields.get("identities") or "[]")
        identities = tuple((i["kind"], i["value"]) for i in ids) if isinstance(ids, list) else ()
        return CustomerView(
            id=customer_id,
            identities=identities,
            history=tuple(parse_history(r) for r in raw),
            created_ms=int(fields.get("created_ms") or 0),
        )

    async def lookup_customer(self, tenant: TenantId, kind: str, value: str) -> CustomerView:
        """The customer an identity resolves to; NotFound if unknown."""
        (owner,) = await self.state.identity_owners(tenant, [(kind, value)])
        if not owner:
            raise NotFound("no customer with this identity")
        return await self.customer(tenant, CustomerId(owner))

    async def rules_of(self, tenant: TenantId) -> RuleBook:
        """The tenant's rule book, as this replica's router holds it (fresh)."""
        router = self.router(tenant)
        await router.refresh_rules()
        return router.rules


#: The contact state each notice announces (for naming WatchContact events).
_NOTICE_STATUS = {
    "queued": ContactStatus.QUEUED,
    "requeued": ContactStatus.QUEUED,
    "escalated": ContactStatus.QUEUED,
    "offered": ContactStatus.OFFERED,
    "assigned": ContactStatus.ASSIGNED,
    "completed": ContactStatus.COMPLETED,
    "abandoned": ContactStatus.ABANDONED,
}


def _digest(draft: Contact, identities: Sequence[tuple[str, str]]) -> str:
    payload = json.dumps(
        [
            draft.channel.value,
            draft.issue,
            draft.priority,
            draft.language,
            sorted(draft.attributes.items()),
            sorted(identities),
        ]
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]
