"""RedisState: the only code that talks to Redis.

The engine reads snapshots here, decides with the pure core, and commits through the
scripts here, which re-check every decision atomically. A lost race is a normal answer
(a negative code), never an exception: the engine decides again. Multi-key reads go in
one pipeline; nothing scans the keyspace.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from queues import keys
from queues.cluster import is_cluster, retry_redirects
from queues.scripts import SCRIPT_NAMES, read_lua
from router import tracing
from router.domain import AgentId, Channel, ContactId, CustomerId, TenantId

_CONTACT, _AGENT = "omniroute.contact_id", "omniroute.agent_id"
#: The ids in each script's ARGV (position, span attribute), for its span: ids are span
#: attributes, never metric labels.
_SPAN_IDS: dict[str, tuple[tuple[int, str], ...]] = {
    "enqueue": ((0, _CONTACT),),
    "reserve_offer": ((0, _CONTACT), (1, _AGENT)),
    "accept_offer": ((0, _CONTACT), (1, _AGENT)),
    "release_offer": ((0, _CONTACT), (1, _AGENT), (3, "omniroute.why")),
    "complete": ((0, _CONTACT), (1, _AGENT)),
    "abandon": ((0, _CONTACT), (1, _AGENT)),
    "write_agent": ((0, _AGENT),),
    "set_state": ((0, _AGENT), (1, "omniroute.agent_state")),
    "heartbeat": ((0, _AGENT),),
    "write_rule": ((0, "omniroute.issue"),),
    "resolve_customer": ((0, "omniroute.customer_id"),),
    "merge_customers": ((0, "omniroute.customer_id"), (1, "omniroute.merged_customer_id")),
    "reassert_offer": ((0, _CONTACT), (1, _AGENT)),
    "escalate": ((0, _CONTACT), (1, _AGENT)),
    "request_callback": ((0, _CONTACT),),
    "callback_due": ((0, _CONTACT),),
}


def _under(parent: Span | None) -> Context | None:
    """A context whose current span is `parent` (None: the current context)."""
    return None if parent is None else trace.set_span_in_context(parent, Context())


def _span_attributes(name: str, keys_: Sequence[str], args: Sequence[Any]) -> dict[str, Any]:
    ids = {attr: args[i] for i, attr in _SPAN_IDS.get(name, ()) if i < len(args) and args[i]}
    return tracing.script_attributes(name, list(keys_), ids)


@dataclass(frozen=True, slots=True)
class ScriptResult:
    """A script's answer: ``code`` (1 done, 0 or negative: why not) and its values."""

    code: int
    values: tuple[Any, ...] = ()

    @property
    def ok(self) -> bool:
        """Did the script do what was asked (or had it already)?"""
        return self.code == 1


def _ignore(
    name: str, seconds: float, outcome: str, args: Sequence[Any], result: ScriptResult | None
) -> None:
    """The default script observer: nothing."""


def _result(raw: Any) -> ScriptResult:
    items = list(raw)
    return ScriptResult(int(items[0]), tuple(items[1:]))


#: (script, seconds, outcome, ARGV, result or None), told after every script call.
ScriptObserver = Callable[[str, float, str, Sequence[Any], "ScriptResult | None"], None]


@dataclass(frozen=True, slots=True)
class Reservation:
    """What the engine asks reserve_offer to commit."""

    contact_id: ContactId
    issue: str
    channel: Channel
    agent_id: AgentId
    agent_version: int
    nonce: str
    reason: str
    #: The decision's structured explanation (JSON, ``router.explain``), stored with it.
    explanation: str = ""


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """An agent as stored: the hash, the load per channel, contacts in hand (id -> token)."""

    fields: dict[str, str]
    load: dict[str, int]
    contacts: dict[str, int]


class RedisState:
    """Tenant state in Redis, behind typed methods. One instance per process."""

    def __init__(
        self,
        redis: Redis,
        *,
        audit_maxlen: int = 100_000,
        idempotency_ttl_s: int = 86_400,
        history_length: int = 50,
        replica_id: str = "",
    ) -> None:
        self.redis = redis
        #: Named in the notices of this replica's offers, so it can skip its own.
        self.replica_id = replica_id
        # The client decodes replies (decode_responses=True), which redis-py's type hints
        # cannot express; commands go through this untyped alias and results are typed here.
        self._r: Any = redis
        self.audit_maxlen = audit_maxlen
        self.idempotency_ttl_s = idempotency_ttl_s
        self.history_length = history_length
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(read_lua(name)) for name in SCRIPT_NAMES
        }
        #: Told after every script call: (script, seconds, outcome 'ok' or the error's
        #: class name, ARGV, the result when there is one); the metrics module sets it.
        self.on_script: ScriptObserver = _ignore

    async def load_scripts(self) -> None:
        """Load every script now, so the service is ready before it says it is serving."""
        for name in SCRIPT_NAMES:
            await self._r.script_load(read_lua(name))

    async def _run(
        self, name: str, keys_: Sequence[str], args: Sequence[Any], parent: Span | None = None
    ) -> ScriptResult:
        """Run script `name`; with tracing on, in a span named after it (a child of
        `parent`, else of the current span)."""
        tracer = tracing.tracer()
        if tracer is None:
            return await self._call(name, keys_, args)
        with tracer.start_as_current_span(
            name,
            context=_under(parent),
            kind=SpanKind.CLIENT,
            attributes=_span_attributes(name, keys_, args),
        ) as span:
            result = await self._call(name, keys_, args)
            span.set_attribute("omniroute.script.code", result.code)
            return result

    async def _call(self, name: str, keys_: Sequence[str], args: Sequence[Any]) -> ScriptResult:
        # EVALSHA reloads the script on NOSCRIPT (failover, SCRIPT FLUSH); a slot being
        # moved (TRYAGAIN) means the script did not run, so it is tried again.
        script, started = self._scripts[name], time.perf_counter()
        try:
            result = _result(
                await retry_redirects(lambda: script(keys=list(keys_), args=list(args)))
            )
        except Exception as exc:
            self.on_script(name, time.perf_counter() - started, type(exc).__name__, args, None)
            raise
        self.on_script(name, time.perf_counter() - started, "ok", args, result)
        return result

    # --- server -----------------------------------------------------------------------

    async def server_info(self) -> dict[str, Any]:
        """INFO server and the eviction policy, for startup checks and logs; on a cluster
        the policy is every primary's, and the first one that is not noeviction wins."""
        info: dict[str, Any] = await self._r.info("server")
        if is_cluster(self.redis):
            per_node = await self._r.config_get("maxmemory-policy", target_nodes="primaries")
            policies = sorted({p.get("maxmemory-policy", "") for p in per_node.values()})
            info["maxmemory_policy"] = next((p for p in policies if p != "noeviction"), "")
            info["maxmemory_policy"] = info["maxmemory_policy"] or "noeviction"
            return info
        policy = await self._r.config_get("maxmemory-policy")
        info["maxmemory_policy"] = policy.get("maxmemory-policy", "")
        return info

    async def now_ms(self) -> int:
        """Redis's clock, the one offer deadlines are measured on."""
        seconds, micros = await self._r.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def register_tenant(self, tenant: TenantId) -> None:
        """Remember the tenant so that the sweepers visit it."""
        await self._r.sadd(keys.TENANTS, tenant)

    async def tenants(self) -> list[TenantId]:
        """Every tenant with state."""
        return [TenantId(t) for t in await self._r.smembers(keys.TENANTS)]

    # --- restarts and reconciliation --------------------------------------------------

    async def run_ids(self, tenants: Sequence[TenantId]) -> dict[TenantId, str]:
        """Run id of the Redis process holding each tenant's slot (it changes with every
        restart and failover): one INFO per node."""
        if not is_cluster(self._r):
            run_id = str((await self._r.info("server"))["run_id"])
            return dict.fromkeys(tenants, run_id)
        by_node: dict[str, str] = {}
        found: dict[TenantId, str] = {}
        for tenant in tenants:
            node = self._r.get_node_from_key(keys.epoch(tenant))
            if node.name not in by_node:
                info = await self._r.info("server", target_nodes=node)
                by_node[node.name] = str(info["run_id"])
            found[tenant] = by_node[node.name]
        return found

    async def check_epoch(self, tenant: TenantId, run_id: str, hold_ms: int) -> ScriptResult:
        """Note the Redis process holding the tenant; when another one held it before,
        start a reconciliation (``check_epoch.lua``): {1, until ms, previous run id}."""
        return await self._run(
            "check_epoch", [keys.epoch(tenant)], [run_id, hold_ms, keys.events(tenant)]
        )

    # --- contacts ---------------------------------------------------------------------

    async def enqueue(
        self,
        tenant: TenantId,
        contact_id: ContactId,
        fields: Mapping[str, str],
        issue: str,
        channel: Channel,
        priority: int,
        target_ms: int,
        request_id: str,
        digest: str,
        trace_parent: str = "",
    ) -> ScriptResult:
        """Queue a new contact (idempotent by id and by `request_id`); `trace_parent`, the
        W3C traceparent of the submit's span, is stored with it ('' stores nothing)."""
        view_name = f"{issue}:{channel.value}"
        return await self._run(
            "enqueue",
            [
                keys.contact(tenant, contact_id),
                keys.queue(tenant),
                keys.view(tenant, issue, channel),
                keys.views(tenant),
                keys.idempotency(tenant, "SubmitContact", request_id or "-"),
            ],
            [
                contact_id,
                json.dumps(dict(fields)),
                priority,
                target_ms,
                digest if request_id else "",
                self.idempotency_ttl_s,
                keys.events(tenant),
                view_name,
                trace_parent,
            ],
        )

    async def idempotency_record(
        self, tenant: TenantId, method: str, request_id: str
    ) -> tuple[str, str] | None:
        """(payload digest, contact id) of the first request with this key, if any."""
        raw = await self._r.get(keys.idempotency(tenant, method, request_id))
        if raw is None:
            return None
        digest, _, contact_id = str(raw).partition("|")
        return digest, contact_id

    async def read_contact(self, tenant: TenantId, contact_id: ContactId) -> dict[str, str]:
        """The contact's hash (empty if unknown)."""
        return dict(await self._r.hgetall(keys.contact(tenant, contact_id)))

    async def read_contacts(
        self, tenant: TenantId, contact_ids: Sequence[str]
    ) -> list[dict[str, str]]:
        """Several contacts' hashes in one round trip (empty dicts for unknown ones)."""
        if not contact_ids:
            return []
        async with self._r.pipeline(transaction=False) as pipe:
            for cid in contact_ids:
                pipe.hgetall(keys.contact(tenant, ContactId(cid)))
            return [dict(h) for h in await pipe.execute()]

    async def queue_head(self, tenant: TenantId, count: int) -> list[str]:
        """Ids of the first `count` waiting contacts, in queue order."""
        return list(await self._r.zrange(keys.queue(tenant), 0, count - 1))

    async def view_heads(self, tenant: TenantId, count: int) -> list[str]:
        """Ids of the `count` oldest waiting contacts of every issue and channel."""
        names = sorted(await self._r.smembers(keys.views(tenant)))
        if not names:
            return []
        async with self._r.pipeline(transaction=False) as pipe:
            for name in names:
                issue, _, channel = str(name).rpartition(":")
                pipe.zrange(keys.view(tenant, issue, Channel(channel)), 0, count - 1)
            heads = await pipe.execute()
        return [str(cid) for ids in heads for cid in ids]

    async def queue_length(self, tenant: TenantId) -> int:
        """Contacts waiting now."""
        return int(await self._r.zcard(keys.queue(tenant)))

    async def reserve(
        self,
        tenant: TenantId,
        reservations: Sequence[Reservation],
        timeout_ms: int,
        parents: Sequence[Span | None] = (),
    ) -> list[ScriptResult]:
        """Run reserve_offer for each decision, pipelined in one round trip; each one
        commits or refuses on its own. With tracing on, each has a span, a child of its
        decision's span in `parents`."""
        if not reservations:
            return []
        script = self._scripts["reserve_offer"]
        calls = [
            (
                [
                    keys.contact(tenant, r.contact_id),
                    keys.queue(tenant),
                    keys.view(tenant, r.issue, r.channel),
                    keys.offers(tenant),
                    keys.agent(tenant, r.agent_id),
                    keys.agent_load(tenant, r.agent_id),
                    keys.agent_contacts(tenant, r.agent_id),
                    keys.available(tenant),
                    keys.epoch(tenant),
                ],
                [
                    r.contact_id,
                    r.agent_id,
                    timeout_ms,
                    r.agent_version,
                    r.nonce,
                    keys.events(tenant),
                    r.reason,
                    self.replica_id,
                    r.explanation,
                ],
            )
            for r in reservations
        ]
        spans = self._reserve_spans(calls, parents)
        started = time.perf_counter()
        async with self._r.pipeline(transaction=False) as pipe:
            for keys_, args in calls:
                # Plain EVALSHA: redis-py's cluster pipeline refuses its evalsha helper
                # because it cannot load scripts first; a NOSCRIPT is healed below.
                pipe.execute_command("EVALSHA", script.sha, len(keys_), *keys_, *args)
            raw = await pipe.execute(raise_on_error=False)
        results: list[ScriptResult] = []
        for i, ((keys_, args), answer) in enumerate(zip(calls, raw, strict=True)):
            span = spans[i] if spans else None
            if isinstance(answer, Exception):
                # A cluster pipeline does not load scripts first: a NOSCRIPT (or a slot
                # in motion, or a failover) is run again on its own, which heals or
                # raises as a direct call would; the nonce makes a repeat harmless.
                self.on_script("reserve_offer", 0.0, type(answer).__name__, args, None)
                if span is not None:
                    span.set_status(Status(StatusCode.ERROR, type(answer).__name__))
                    span.end()
                parent = parents[i] if i < len(parents) else None
                results.append(await self._run("reserve_offer", keys_, args, parent))
            else:
                results.append(_result(answer))
                elapsed = time.perf_counter() - started
                self.on_script("reserve_offer", elapsed, "ok", args, results[-1])
                if span is not None:
                    span.set_attribute("omniroute.script.code", results[-1].code)
                    span.end()
        return results

    def _reserve_spans(
        self, calls: Sequence[tuple[list[str], list[Any]]], parents: Sequence[Span | None]
    ) -> list[Span]:
        """One started span per pipelined reserve_offer (none when tracing is off)."""
        tracer = tracing.tracer()
        if tracer is None:
            return []
        spans = []
        for i, (keys_, args) in enumerate(calls):
            parent = parents[i] if i < len(parents) else None
            spans.append(
                tracer.start_span(
                    "reserve_offer",
                    context=_under(parent),
                    kind=SpanKind.CLIENT,
                    attributes=_span_attributes("reserve_offer", keys_, args),
                )
            )
        return spans

    async def accept(
        self,
        tenant: TenantId,
        contact_id: ContactId,
        agent_id: AgentId,
        token: int,
        day: str,
    ) -> ScriptResult:
        """Commit an accept if the offer is still this agent's with this token; the
        values are the contact's hash, flattened."""
        return await self._run(
            "accept_offer",
            [
                keys.contact(tenant, contact_id),
                keys.offers(tenant),
                keys.agent(tenant, agent_id),
                keys.stats(tenant, day),
            ],
            [contact_id, agent_id, token, keys.events(tenant)],
        )

    async def reassert(
        self,
        tenant: TenantId,
        contact_id: ContactId,
        agent_id: AgentId,
        token: int,
        issue: str,
        channel: Channel,
    ) -> ScriptResult:
        """While the tenant reconciles after a Redis restart: assign the contact again to
        the agent that accepted it under a token from before (``reassert_offer.lua``).
        `issue` and `channel` are what the caller last read of it."""
        return await self._run(
            "reassert_offer",
            [
                keys.contact(tenant, contact_id),
                keys.queue(tenant),
                keys.view(tenant, issue, channel),
                keys.offers(tenant),
                keys.agent(tenant, agent_id),
                keys.agent_load(tenant, agent_id),
                keys.agent_contacts(tenant, agent_id),
                keys.epoch(tenant),
            ],
            [contact_id, agent_id, token, keys.events(tenant), issue, channel.value],
        )

    async def release(
        self,
        tenant: TenantId,
        contact_id: ContactId,
        agent_id: AgentId,
        token: int,
        issue: str,
        channel: Channel,
        why: str,
        max_missed: int,
    ) -> ScriptResult:
        """Return an offered contact to the queue (declined, expired or withdrawn)."""
        return await self._run(
            "release_offer",
            [
                keys.contact(tenant, contact_id),
                keys.offers(tenant),
                keys.queue(tenant),
                keys.view(tenant, issue, channel),
                keys.agent(tenant, agent_id),
                keys.agent_load(tenant, agent_id),
                keys.agent_contacts(tenant, agent_id),
                keys.available(tenant),
                keys.audit(tenant),
            ],
            [
                contact_id,
                agent_id,
                token,
                why,
                max_missed,
                keys.events(tenant),
                self.audit_maxlen,
            ],
        )

    async def complete(
        self,
        tenant: TenantId,
        contact_id: ContactId,
        agent_id: AgentId,
        token: int,
        outcome: str,
        note: str,
        entry: Mapping[str, Any],
        customer_id: CustomerId | None,
        day: str,
        satisfaction: int | None = None,
    ) -> ScriptResult:
        """Close an accepted contact and append it to the customer's history (with the
        customer's `satisfaction`, 1-5, when reported); the values are the contact's hash,
        flattened."""
        return await self._run(
            "complete",
            [
                keys.contact(tenant, contact_id),
                keys.agent(tenant, agent_id),
                keys.agent_load(tenant, agent_id),
                keys.agent_contacts(tenant, agent_id),
                keys.stats(tenant, day),
                keys.history(tenant, customer_id or CustomerId("-")),
            ],
            [
                contact_id,
                agent_id,
                token,
                outcome,
                note,
                json.dumps(dict(entry)),
                self.history_length,
                keys.events(tenant),
                "1" if customer_id else "0",
                "" if satisfaction is None else str(satisfaction),
            ],
        )

    async def escalate(
        self,
        tenant: TenantId,
        contact_id: ContactId,
        bot_id: AgentId,
        token: int,
        summary: str,
        entry: Mapping[str, Any],
        customer_id: CustomerId | None,
        issue: str,
        channel: Channel,
        day: str,
    ) -> ScriptResult:
        """Move a contact the bot holds back to the queue, for people, at its old place,
        with the bot's `summary` on it and (`entry`) in the customer's history; the values
        are the contact's hash, flattened."""
        return await self._run(
            "escalate",
            [
                keys.contact(tenant, contact_id),
                keys.agent(tenant, bot_id),
                keys.agent_load(tenant, bot_id),
                keys.agent_contacts(tenant, bot_id),
                keys.queue(tenant),
                keys.view(tenant, issue, channel),
                keys.views(tenant),
                keys.stats(tenant, day),
                keys.history(tenant, customer_id or CustomerId("-")),
            ],
            [
                contact_id,
                bot_id,
                token,
                summary,
                json.dumps(dict(entry)),
                self.history_length,
                keys.events(tenant),
                "1" if customer_id else "0",
                f"{issue}:{channel.value}",
            ],
        )

    async def request_callback(
        self, tenant: TenantId, contact_id: ContactId, issue: str, channel: Channel, at_ms: int
    ) -> ScriptResult:
        """Mark a waiting voice contact a callback: at its place (`at_ms` 0), or out of the
        queue until `at_ms`; the values are the contact's hash, flattened."""
        return await self._run(
            "request_callback",
            [
                keys.contact(tenant, contact_id),
                keys.queue(tenant),
                keys.view(tenant, issue, channel),
                keys.callbacks(tenant),
            ],
            [contact_id, at_ms, keys.events(tenant)],
        )

    async def due_callbacks(self, tenant: TenantId, limit: int = 200) -> list[str]:
        """Callbacks whose chosen time has come on Redis's clock (O(log n + limit))."""
        now = await self.now_ms()
        return list(
            await self._r.zrangebyscore(keys.callbacks(tenant), "-inf", now, start=0, num=limit)
        )

    async def forget_callback(self, tenant: TenantId, contact_id: ContactId) -> None:
        """Drop a callback whose contact is gone from the callbacks set."""
        await self._r.zrem(keys.callbacks(tenant), contact_id)

    async def callback_due(
        self, tenant: TenantId, contact_id: ContactId, issue: str, channel: Channel
    ) -> ScriptResult:
        """Put a callback whose time has come in the queue (a no-op when already done)."""
        return await self._run(
            "callback_due",
            [
                keys.contact(tenant, contact_id),
                keys.callbacks(tenant),
                keys.queue(tenant),
                keys.view(tenant, issue, channel),
            ],
            [contact_id, keys.events(tenant)],
        )

    async def abandon(
        self,
        tenant: TenantId,
        contact_id: ContactId,
        offered_to: AgentId | None,
        reason: str,
        entry: Mapping[str, Any],
        customer_id: CustomerId | None,
        issue: str,
        channel: Channel,
        day: str,
    ) -> ScriptResult:
        """Withdraw a waiting or offered contact: the customer left."""
        agent_id = offered_to or AgentId("-")
        return await self._run(
            "abandon",
            [
                keys.contact(tenant, contact_id),
                keys.queue(tenant),
                keys.view(tenant, issue, channel),
                keys.offers(tenant),
                keys.stats(tenant, day),
                keys.agent_load(tenant, agent_id),
                keys.agent_contacts(tenant, agent_id),
                keys.history(tenant, customer_id or CustomerId("-")),
                keys.callbacks(tenant),
            ],
            [
                contact_id,
                offered_to or "",
                reason,
                keys.events(tenant),
                f"{issue}:{channel.value}:",
                json.dumps(dict(entry)),
                self.history_length,
                "1" if customer_id else "0",
            ],
        )

    async def due_offers(self, tenant: TenantId, limit: int = 200) -> list[str]:
        """Contacts whose offer deadline has passed on Redis's clock."""
        now = await self.now_ms()
        return list(
            await self._r.zrangebyscore(keys.offers(tenant), "-inf", now, start=0, num=limit)
        )

    # --- agents -----------------------------------------------------------------------

    async def write_agent(
        self,
        tenant: TenantId,
        agent_id: AgentId,
        mode: str,
        profile: Mapping[str, Any] | None,
        expected_version: int | None,
        actor: str,
        action: str,
        target: str,
    ) -> ScriptResult:
        """Create, update or delete an agent's profile, audited atomically."""
        return await self._run(
            "write_agent",
            [
                keys.agent(tenant, agent_id),
                keys.agents(tenant),
                keys.available(tenant),
                keys.agent_load(tenant, agent_id),
                keys.agent_contacts(tenant, agent_id),
                keys.audit(tenant),
                keys.presence(tenant),
                keys.skill_agents(tenant),
            ],
            [
                agent_id,
                mode,
                "" if expected_version is None else str(expected_version),
                json.dumps(profile or {}),
                actor,
                action,
                target,
                keys.events(tenant),
                self.audit_maxlen,
            ],
        )

    async def set_state(
        self,
        tenant: TenantId,
        agent_id: AgentId,
        state: str,
        reason: str,
        actor: str,
        *,
        sign_in: bool = False,
    ) -> ScriptResult:
        """Change an agent's state (sign-in, available/away, sign-out), audited."""
        return await self._run(
            "set_state",
            [
                keys.agent(tenant, agent_id),
                keys.available(tenant),
                keys.presence(tenant),
                keys.agent_contacts(tenant, agent_id),
                keys.audit(tenant),
            ],
            [
                agent_id,
                state,
                reason,
                actor,
                keys.events(tenant),
                self.audit_maxlen,
                "1" if sign_in else "0",
            ],
        )

    async def heartbeat(self, tenant: TenantId, agent_id: AgentId) -> ScriptResult:
        """Renew a signed-in agent's presence."""
        return await self._run(
            "heartbeat",
            [keys.agent(tenant, agent_id), keys.presence(tenant)],
            [agent_id],
        )

    async def stale_agents(self, tenant: TenantId, seen_before_ms: int) -> list[AgentId]:
        """Signed-in agents whose last heartbeat is older than `seen_before_ms`."""
        ids = await self._r.zrangebyscore(
            keys.presence(tenant), "-inf", seen_before_ms, start=0, num=500
        )
        return [AgentId(a) for a in ids]

    async def forget_presence(self, tenant: TenantId, agent_id: AgentId) -> None:
        """Stop watching an agent's heartbeat (it lapsed and was dealt with)."""
        await self._r.zrem(keys.presence(tenant), agent_id)

    async def agent_ids(self, tenant: TenantId) -> list[AgentId]:
        """Every agent id of the tenant, sorted."""
        return sorted(AgentId(a) for a in await self._r.smembers(keys.agents(tenant)))

    async def read_agents(
        self, tenant: TenantId, agent_ids: Sequence[AgentId]
    ) -> list[AgentRecord | None]:
        """Agents with load and contacts in hand, in one round trip (None if unknown)."""
        if not agent_ids:
            return []
        async with self._r.pipeline(transaction=False) as pipe:
            for a in agent_ids:
                pipe.hgetall(keys.agent(tenant, a))
                pipe.hgetall(keys.agent_load(tenant, a))
                pipe.hgetall(keys.agent_contacts(tenant, a))
            raw = await pipe.execute()
        records: list[AgentRecord | None] = []
        for i in range(0, len(raw), 3):
            fields, load, held = raw[i], raw[i + 1], raw[i + 2]
            if not fields:
                records.append(None)
                continue
            records.append(
                AgentRecord(
                    dict(fields),
                    {k: int(v) for k, v in load.items()},
                    {k: int(v) for k, v in held.items()},
                )
            )
        return records

    # --- rules ------------------------------------------------------------------------

    async def write_rule(
        self,
        tenant: TenantId,
        issue: str,
        mode: str,
        rule_json: str,
        actor: str,
        action: str,
        target: str,
    ) -> ScriptResult:
        """Create, replace or delete an issue's rule, audited atomically."""
        return await self._run(
            "write_rule",
            [
                keys.rule(tenant, issue),
                keys.rules(tenant),
                keys.audit(tenant),
                keys.skills(tenant),
                keys.skill_agents(tenant),
                keys.skill_rules(tenant),
            ],
            [
                issue,
                mode,
                rule_json,
                actor,
                action,
                target,
                keys.events(tenant),
                self.audit_maxlen,
            ],
        )

    async def write_skill(
        self,
        tenant: TenantId,
        skill: str,
        mode: str,
        description: str,
        actor: str,
        action: str,
        target: str,
    ) -> ScriptResult:
        """Declare a skill in the catalogue (mode create) or withdraw it (delete), audited."""
        return await self._run(
            "write_skill",
            [
                keys.skills(tenant),
                keys.skill_agents(tenant),
                keys.skill_rules(tenant),
                keys.audit(tenant),
            ],
            [
                skill,
                mode,
                json.dumps({"description": description}),
                actor,
                action,
                target,
                self.audit_maxlen,
            ],
        )

    async def index_skills(self, tenant: TenantId) -> bool:
        """Count the catalogue afresh from the tenant's agents and rules unless done before
        (``index_skills.lua``); True if it counted now. Retried while agents or rules are
        written between listing them and counting."""
        while True:
            agent_ids = sorted(await self._r.smembers(keys.agents(tenant)))
            issues = sorted(await self._r.smembers(keys.rules(tenant)))
            result = await self._run(
                "index_skills",
                [
                    keys.skill_agents(tenant),
                    keys.skill_rules(tenant),
                    keys.skill_counts(tenant),
                    keys.agents(tenant),
                    keys.rules(tenant),
                    *(keys.agent(tenant, AgentId(a)) for a in agent_ids),
                    *(keys.rule(tenant, issue) for issue in issues),
                ],
                [len(agent_ids), len(issues), *agent_ids, *issues],
            )
            if result.code != -2:
                return result.code == 1

    async def read_skills(
        self, tenant: TenantId
    ) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        """The catalogue: declared skill -> JSON, and skill -> count of the agents holding it
        and of the rules naming it (three reads in one round trip)."""
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.skills(tenant))
            pipe.hgetall(keys.skill_agents(tenant))
            pipe.hgetall(keys.skill_rules(tenant))
            declared, agents, rules = await pipe.execute()
        return dict(declared), dict(agents), dict(rules)

    async def read_rules(self, tenant: TenantId) -> dict[str, str]:
        """Every rule of the tenant as JSON, by issue."""
        issues = sorted(await self._r.smembers(keys.rules(tenant)))
        if not issues:
            return {}
        values = await self._r.mget([keys.rule(tenant, i) for i in issues])
        return {i: v for i, v in zip(issues, values, strict=True) if v is not None}

    async def read_rule(self, tenant: TenantId, issue: str) -> str | None:
        """One rule as JSON, if any."""
        value = await self._r.get(keys.rule(tenant, issue))
        return None if value is None else str(value)

    # --- customers --------------------------------------------------------------------

    async def identity_owners(
        self, tenant: TenantId, identities: Sequence[tuple[str, str]]
    ) -> list[str]:
        """The customer id each identity resolves to now ('' when unknown)."""
        if not identities:
            return []
        values = await self._r.mget([keys.identity(tenant, k, v) for k, v in identities])
        return [v or "" for v in values]

    async def resolve_customer(
        self,
        tenant: TenantId,
        customer_id: CustomerId,
        identities: Sequence[tuple[str, str]],
        seen_owners: Sequence[str],
        history_limit: int = 20,
    ) -> ScriptResult:
        """Map identities to `customer_id` if they still resolve as the caller saw; the
        values are the customer id and its newest history entries (JSON)."""
        return await self._run(
            "resolve_customer",
            [keys.customer(tenant, customer_id), keys.history(tenant, customer_id)]
            + [keys.identity(tenant, k, v) for k, v in identities],
            [
                customer_id,
                json.dumps([{"kind": k, "value": v} for k, v in identities]),
                history_limit,
                *seen_owners,
            ],
        )

    async def merge_customers(
        self,
        tenant: TenantId,
        keep: CustomerId,
        gone: CustomerId,
        gone_identities_json: str,
        actor: str,
        target: str,
    ) -> ScriptResult:
        """Merge customer `gone` into `keep` (merge_customers.lua), if gone's identities
        are still `gone_identities_json` as the caller read them."""
        idents = json.loads(gone_identities_json) if gone_identities_json else []
        return await self._run(
            "merge_customers",
            [
                keys.customer(tenant, keep),
                keys.history(tenant, keep),
                keys.customer(tenant, gone),
                keys.history(tenant, gone),
                keys.audit(tenant),
            ]
            + [keys.identity(tenant, i["kind"], i["value"]) for i in idents],
            [
                keep,
                gone,
                gone_identities_json or "[]",
                self.history_length,
                actor,
                self.audit_maxlen,
                target,
            ],
        )

    async def count(self, tenant: TenantId, day: str, counters: Mapping[str, int]) -> None:
        """Add to today's counters (``issue:channel:counter`` fields), one round trip."""
        if not counters:
            return
        async with self._r.pipeline(transaction=False) as pipe:
            for name, n in counters.items():
                pipe.hincrby(keys.stats(tenant, day), name, n)
            await pipe.execute()

    async def read_explanation(self, tenant: TenantId, contact_id: ContactId) -> str | None:
        """The stored explanation JSON of the contact's latest offer ('' if never offered),
        or None when the contact is unknown."""
        exists, why = await self._r.hmget(keys.contact(tenant, contact_id), ["status", "why"])
        return None if exists is None else str(why or "")

    async def read_customer(
        self, tenant: TenantId, customer_id: CustomerId, history_limit: int
    ) -> tuple[dict[str, str], list[str]]:
        """The customer's hash and its newest history entries (JSON strings)."""
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.customer(tenant, customer_id))
            pipe.lrange(keys.history(tenant, customer_id), 0, history_limit - 1)
            fields, entries = await pipe.execute()
        return dict(fields), list(entries)

    # --- figures ----------------------------------------------------------------------

    async def queue_views(
        self, tenant: TenantId, day: str
    ) -> tuple[list[tuple[str, int, int | None]], dict[str, str]]:
        """Per ``issue:channel``: waiting count and oldest arrival (ms); and today's
        counters hash."""
        names = sorted(await self._r.smembers(keys.views(tenant)))
        async with self._r.pipeline(transaction=False) as pipe:
            for name in names:
                issue, channel = name.rsplit(":", 1)
                key = keys.view(tenant, issue, Channel(channel))
                pipe.zcard(key)
                pipe.zrange(key, 0, 0, withscores=True)
            pipe.hgetall(keys.stats(tenant, day))
            raw = await pipe.execute()
        rows: list[tuple[str, int, int | None]] = []
        for i, name in enumerate(names):
            count, oldest = raw[2 * i], raw[2 * i + 1]
            rows.append((name, int(count), int(oldest[0][1]) if oldest else None))
        return rows, dict(raw[-1])

    async def presence_counts(self, tenant: TenantId) -> tuple[int, int]:
        """(agents available, agents signed in)."""
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.scard(keys.available(tenant))
            pipe.zcard(keys.presence(tenant))
            available, signed_in = await pipe.execute()
        return int(available), int(signed_in)

    # --- audit ------------------------------------------------------------------------

    async def append_audit(
        self, tenant: TenantId, actor: str, action: str, target: str, before: str, after: str
    ) -> None:
        """Record an event that no script records (e.g. a denied call)."""
        await self._r.xadd(
            keys.audit(tenant),
            {"actor": actor, "action": action, "target": target, "before": before, "after": after},
            maxlen=self.audit_maxlen,
            approximate=True,
        )

    async def read_audit(
        self, tenant: TenantId, count: int, before_id: str | None
    ) -> list[tuple[str, dict[str, str]]]:
        """Audit events newest first, strictly older than `before_id` when given."""
        maximum = f"({before_id}" if before_id else "+"
        rows = await self._r.xrevrange(keys.audit(tenant), max=maximum, min="-", count=count)
        return [(str(i), dict(f)) for i, f in rows]

    # --- API keys ---------------------------------------------------------------------

    async def put_api_key(self, tenant: TenantId, key_id: str, record: Mapping[str, Any]) -> None:
        """Store an API key record (digest only, never the secret)."""
        await self._r.hset(keys.api_keys(tenant), key_id, json.dumps(dict(record)))
        await self.register_tenant(tenant)

    async def get_api_key(self, tenant: TenantId, key_id: str) -> dict[str, Any] | None:
        """One API key record."""
        raw = await self._r.hget(keys.api_keys(tenant), key_id)
        return None if raw is None else dict(json.loads(raw))

    async def list_api_keys(self, tenant: TenantId) -> dict[str, dict[str, Any]]:
        """Every API key record of the tenant, by key id."""
        raw = await self._r.hgetall(keys.api_keys(tenant))
        return {k: dict(json.loads(v)) for k, v in raw.items()}

    async def get_rate_limit(self, tenant: TenantId) -> dict[str, Any] | None:
        """The tenant's own rate limit record, or None (the replicas' default applies)."""
        raw = await self._r.get(keys.rate_limit(tenant))
        return None if raw is None else dict(json.loads(raw))

    async def put_rate_limit(
        self, tenant: TenantId, record: Mapping[str, Any] | None
    ) -> dict[str, Any] | None:
        """Set (or, with None, clear) the tenant's rate limit; returns the previous one."""
        key = keys.rate_limit(tenant)
        if record is None:
            raw = await self._r.getdel(key)
        else:
            raw = await self._r.set(key, json.dumps(dict(record)), get=True)
        return None if raw is None else dict(json.loads(raw))

    async def pending_offers(self, tenant: TenantId) -> int:
        """Offers waiting for an answer now."""
        return int(await self._r.zcard(keys.offers(tenant)))

    async def hold_lease(self, key: str, holder: str, ttl_ms: int) -> bool:
        """Take the lease `key` if free (SET NX PX) or renew it if `holder` has it; whether
        `holder` holds it now. A lapsed holder loses it to the next taker."""
        if await self._r.set(key, holder, nx=True, px=ttl_ms):
            return True
        if await self._r.get(key) == holder:
            await self._r.pexpire(key, ttl_ms)
            return True
        return False

    async def publish(self, tenant: TenantId, event: Mapping[str, Any]) -> None:
        """Tell every replica that something changed."""
        await self._r.publish(keys.events(tenant), json.dumps(dict(event)))
