"""A storm of calls cancelled at random moments, each reply checked against its own request.

redis-py's cancellation bug (CVE-2023-28858, fixed in 4.3.6, 4.4.3 and 4.5.3; its sequel
CVE-2023-28859 in 4.4.4 and 4.5.4) left a cancelled command's reply unread on a pooled
connection, and the next caller to take that connection read it as its own: one request's
answer handed to another's caller. Here many clients call, at once, RPCs whose replies name
their request (``GetContact``, ``GetAgent``, ``SubmitContact`` with its own request id) and
``RedisState`` methods on the replica's own connection pool, and cancel a share of them at a
random moment: by cancelling the asyncio task, by ``call.cancel()`` on the gRPC call, after a
few event-loop turns or a sleep of microseconds to milliseconds. Every reply that does arrive
is compared with its request; the figures say how many calls ran, how many were cancelled
before their reply and how many replies belonged to another request (must be 0).

Used by ``tests/grpc/test_cancel_storm.py`` (a smoke size in the test command, 100,000
cancellations with ``make cancel-storm``).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from queues.records import contact_fields
from router.auth import Role
from router.domain import AgentId, Channel, Contact, ContactId, TenantId
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import resources_pb2 as pb
from router.pb.omniroute.v1 import supervisor_service_pb2 as sup_pb
from tests.grpc.conftest import Api

TENANT = "t1"
T = TenantId(TENANT)
ISSUE = "billing"


@dataclass
class Figures:
    """What a storm did and found."""

    rpcs: int = 0
    redis_calls: int = 0
    #: Calls cancelled before their reply arrived, by how (grpc_task, grpc_call, redis_task).
    cancelled: Counter[str] = field(default_factory=Counter)
    #: Cancels that came after the reply (the call completed; its reply was checked).
    cancelled_too_late: int = 0
    replies_checked: int = 0
    mismatches: list[str] = field(default_factory=list)
    #: Calls that failed without being cancelled, by error (must stay empty).
    errors: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    @property
    def cancellations(self) -> int:
        """Calls cancelled before their reply."""
        return sum(self.cancelled.values())

    def summary(self) -> dict[str, Any]:
        """The figures, JSON-ready."""
        return {
            "rpcs": self.rpcs,
            "redis_calls": self.redis_calls,
            "cancelled": self.cancellations,
            "cancelled_by": dict(sorted(self.cancelled.items())),
            "cancelled_after_reply": self.cancelled_too_late,
            "replies_checked": self.replies_checked,
            "mismatches": len(self.mismatches),
            "errors": sum(self.errors.values()),
            "top_errors": dict(self.errors.most_common(3)),
            "elapsed_s": round(self.elapsed_s, 1),
            "calls_per_s": round((self.rpcs + self.redis_calls) / max(self.elapsed_s, 1e-9)),
        }


@dataclass
class Floor:
    """What the storm reads (seeded before it) and what it submits."""

    seeds: dict[str, int] = field(default_factory=dict)  # contact name -> seq
    agents: dict[str, str] = field(default_factory=dict)  # agent name -> display name
    #: request id -> contact name, once a reply (or a later resubmit) said which.
    submitted: dict[str, str] = field(default_factory=dict)
    #: request ids sent over gRPC (answered or not).
    sent: list[str] = field(default_factory=list)
    #: (contact id, request id) enqueued straight through RedisState (answered or not).
    direct: list[tuple[str, str]] = field(default_factory=list)


def submit_request(rid: str) -> contact_pb.SubmitContactRequest:
    """The SubmitContact request of request id `rid` (the same payload every time)."""
    contact = pb.Contact(
        channel=pb.CHANNEL_CHAT, issue=ISSUE, priority=len(rid) % 10, attributes={"rid": rid}
    )
    return contact_pb.SubmitContactRequest(
        parent=f"tenants/{TENANT}", contact=contact, request_id=rid
    )


async def seed(api: Api, contacts: int, agents: int) -> Floor:
    """A rule, signed-out agents with distinct names, and queued contacts with distinct
    attributes: the records the storm reads back."""
    floor = Floor()
    await api.create_rule(ISSUE, {ISSUE: 1})
    for j in range(agents):
        agent = await api.create_agent(f"s{j}", {ISSUE: 1 + j % 5})
        floor.agents[agent.name] = agent.display_name
    md = api.md(Role.PLATFORM)
    for i in range(contacts):
        request = contact_pb.SubmitContactRequest(
            parent=f"tenants/{TENANT}",
            contact=pb.Contact(channel=pb.CHANNEL_EMAIL, issue=ISSUE, attributes={"seq": str(i)}),
        )
        reply = await api.contacts.SubmitContact(request, metadata=md)
        floor.seeds[reply.name] = i
    return floor


class Storm:
    """Workers calling and cancelling until `target` calls were cancelled before their reply."""

    def __init__(
        self, api: Api, floor: Floor, target: int, seed: int = 0, left_alone: float = 0.3
    ) -> None:
        self.api = api
        #: The share of calls not cancelled; the rest are cancelled, half each way for RPCs.
        self.left_alone = left_alone
        self.floor = floor
        self.target = target
        self.rng = random.Random(seed)
        self.figures = Figures()
        self._serial = 0
        self._seed_names = sorted(floor.seeds)
        self._agent_names = sorted(floor.agents)
        self._platform = api.md(Role.PLATFORM)
        self._supervisor = api.md(Role.SUPERVISOR)

    # --- one call -----------------------------------------------------------------------

    async def pause(self) -> None:
        """A random moment: some event-loop turns, or a sleep of 1 µs to 5 ms."""
        if self.rng.random() < 0.5:
            for _ in range(self.rng.randrange(0, 24)):
                await asyncio.sleep(0)
        else:
            await asyncio.sleep(math.exp(self.rng.uniform(math.log(1e-6), math.log(5e-3))))

    async def _outcome(
        self, task: asyncio.Future[Any], how: str, cancel: Callable[[], object] | None
    ) -> tuple[bool, Any]:
        """Let `task` run, then (unless `cancel` is None) cancel it at a random moment with
        `cancel()`; (completed, its reply or exception)."""
        cancel_sent = False
        if cancel is not None:
            await self.pause()
            cancel_sent = not task.done()
            if cancel_sent:
                cancel()
        await asyncio.wait([task])
        if task.cancelled():
            self.figures.cancelled[how] += 1
            return False, None
        if cancel_sent:
            self.figures.cancelled_too_late += 1
        exc = task.exception()
        return True, exc if exc is not None else task.result()

    async def grpc_call(self, make: Callable[[], Any], check: Callable[[Any], None]) -> None:
        """One RPC, left alone or cancelled by ``call.cancel()`` or by cancelling the
        task that awaits it; its reply, if one arrives, checked."""
        self.figures.rpcs += 1
        mode = self.rng.random()
        call = make()  # the RPC is under way from here
        task = asyncio.ensure_future(_await(call))
        if mode < self.left_alone:
            done, reply = await self._outcome(task, "", None)
        elif mode < (1 + self.left_alone) / 2:
            done, reply = await self._outcome(task, "grpc_call", call.cancel)
        else:
            done, reply = await self._outcome(task, "grpc_task", task.cancel)
        self._judge(done, reply, check)

    async def redis_call(
        self, start: Callable[[], Awaitable[Any]], check: Callable[[Any], None]
    ) -> None:
        """One RedisState call on the replica's own pool, left alone or cancelled."""
        self.figures.redis_calls += 1
        task = asyncio.ensure_future(start())
        cancel = None if self.rng.random() < self.left_alone else task.cancel
        done, reply = await self._outcome(task, "redis_task", cancel)
        self._judge(done, reply, check)

    def _judge(self, done: bool, reply: Any, check: Callable[[Any], None]) -> None:
        if not done:
            return
        if isinstance(reply, grpc.aio.AioRpcError):
            self.figures.errors[f"{reply.code().name}: {reply.details()}"[:160]] += 1
            return
        if isinstance(reply, BaseException):
            self.figures.errors[repr(reply)[:160]] += 1
            return
        self.figures.replies_checked += 1
        try:
            check(reply)
        except AssertionError as exc:
            self.figures.mismatches.append(str(exc) or "mismatch")

    # --- the calls ----------------------------------------------------------------------

    def _next_rid(self, prefix: str) -> str:
        self._serial += 1
        return f"{prefix}-{self._serial}"

    async def get_contact(self) -> None:
        name = self.rng.choice(self._seed_names)
        seq = str(self.floor.seeds[name])

        def check(reply: pb.Contact) -> None:
            got = (reply.name, reply.attributes.get("seq"))
            assert got == (name, seq), f"GetContact {name} (seq {seq}) answered {got}"

        await self.grpc_call(
            lambda: self.api.contacts.GetContact(
                contact_pb.GetContactRequest(name=name), metadata=self._platform
            ),
            check,
        )

    async def get_agent(self) -> None:
        name = self.rng.choice(self._agent_names)
        display = self.floor.agents[name]

        def check(reply: pb.Agent) -> None:
            got = (reply.name, reply.display_name)
            assert got == (name, display), f"GetAgent {name} answered {got}"

        await self.grpc_call(
            lambda: self.api.sup.GetAgent(
                sup_pb.GetAgentRequest(name=name), metadata=self._supervisor
            ),
            check,
        )

    async def submit(self) -> None:
        """A new request id, or now and then one sent before (maybe cancelled then)."""
        sent = self.floor.sent
        if sent and self.rng.random() < 0.2:
            rid = self.rng.choice(sent)
        else:
            rid = self._next_rid("rpc")
            sent.append(rid)

        def check(reply: pb.Contact) -> None:
            got = reply.attributes.get("rid")
            assert got == rid, f"SubmitContact {rid} answered the contact of {got}"
            first = self.floor.submitted.setdefault(rid, reply.name)
            assert first == reply.name, f"SubmitContact {rid} made {first}, then {reply.name}"

        await self.grpc_call(
            lambda: self.api.contacts.SubmitContact(submit_request(rid), metadata=self._platform),
            check,
        )

    async def read_contacts(self) -> None:
        names = self.rng.sample(self._seed_names, self.rng.choice((1, 1, 3)))
        state = self.api.service.state

        def check(replies: list[dict[str, str]]) -> None:
            for name, fields in zip(names, replies, strict=True):
                want = self.floor.seeds[name]
                got = json.loads(fields.get("attrs") or "{}").get("seq")
                assert got == str(want), f"read_contacts {name} (seq {want}) read seq {got}"

        if len(names) == 1:
            cid = ContactId(_id(names[0]))

            async def read_one() -> list[dict[str, str]]:
                return [await state.read_contact(T, cid)]

            await self.redis_call(read_one, check)
        else:
            ids = [_id(n) for n in names]
            await self.redis_call(lambda: state.read_contacts(T, ids), check)

    async def read_agents(self) -> None:
        names = self.rng.sample(self._agent_names, 2)
        ids = [AgentId(_id(n)) for n in names]

        def check(records: list[Any]) -> None:
            for name, record in zip(names, records, strict=True):
                got = record.fields.get("display_name") if record is not None else None
                want = self.floor.agents[name]
                assert got == want, f"read_agents {name} ({want}) read {got}"

        await self.redis_call(lambda: self.api.service.state.read_agents(T, ids), check)

    async def enqueue(self) -> None:
        """A contact queued straight through RedisState (its own id and request id)."""
        rid = self._next_rid("direct")
        cid = f"d{self._serial}"
        self.floor.direct.append((cid, rid))

        def check(result: Any) -> None:
            got = (result.code, str(result.values[0]) if result.values else None)
            assert got == (1, cid), f"enqueue of {cid} answered {got}"

        await self.redis_call(lambda: direct_enqueue(self.api, cid, rid), check)

    async def idempotency(self) -> None:
        known = list(self.floor.submitted.items())
        if not known:
            return
        rid, name = self.rng.choice(known)

        def check(record: tuple[str, str] | None) -> None:
            got = record[1] if record else None
            assert got == _id(name), f"idempotency record of {rid} names {got}, not {name}"

        await self.redis_call(
            lambda: self.api.service.state.idempotency_record(T, "SubmitContact", rid), check
        )

    # --- the workers --------------------------------------------------------------------

    async def _grpc_worker(self) -> None:
        ops = (self.get_contact, self.get_agent, self.submit)
        weights = (4, 3, 3)
        while self.figures.cancellations < self.target:
            await self.rng.choices(ops, weights)[0]()

    async def _redis_worker(self) -> None:
        ops = (self.read_contacts, self.read_agents, self.enqueue, self.idempotency)
        weights = (4, 3, 2, 1)
        while self.figures.cancellations < self.target:
            await self.rng.choices(ops, weights)[0]()

    async def run(self, grpc_workers: int = 48, redis_workers: int = 16) -> Figures:
        """Run until `target` calls were cancelled before their reply."""
        started = time.perf_counter()
        workers = [self._grpc_worker() for _ in range(grpc_workers)]
        workers += [self._redis_worker() for _ in range(redis_workers)]
        await asyncio.gather(*workers)
        self.figures.elapsed_s = time.perf_counter() - started
        return self.figures


async def _await(call: Any) -> Any:
    return await call


def _id(name: str) -> str:
    """The last segment of a resource name."""
    return name.rsplit("/", 1)[-1]


async def direct_enqueue(api: Api, contact_id: str, rid: str) -> Any:
    """Queue a contact through the replica's RedisState, bypassing gRPC and the engine."""
    contact = Contact(ContactId(contact_id), Channel.SMS, ISSUE, 0.0, attributes={"rid": rid})
    return await api.service.state.enqueue(
        T,
        ContactId(contact_id),
        contact_fields(contact, ()),
        ISSUE,
        Channel.SMS,
        0,
        60_000,
        rid,
        f"digest-{rid}",
    )


# --- after the storm --------------------------------------------------------------------


async def audit(api: Api, floor: Floor) -> tuple[list[str], dict[str, int]]:
    """Every contact either fully there or absent: each submitted request id has its
    contact (hash, queue, view, idempotency record naming it) or none of these; then every
    request is sent again, uncancelled, and must answer with the contact it made, if any,
    leaving exactly one contact per request id. Returns (problems, counts)."""
    state = api.service.state
    redis: Any = api.service.redis
    problems: list[str] = []
    contacts = await _contacts(redis)
    queued = set(await redis.zrange(f"omr:{{{TENANT}}}:queue", 0, -1))
    by_rid: dict[str, list[str]] = {}
    for cid, fields in contacts.items():
        attrs = json.loads(fields.get("attrs") or "{}")
        if "seq" in attrs:
            continue
        rid = attrs.get("rid")
        if rid is None:
            problems.append(f"contact {cid}: neither seq nor rid in {fields}")
            continue
        by_rid.setdefault(rid, []).append(cid)
        if fields.get("status") != "queued" or cid not in queued:
            problems.append(
                f"contact {cid} ({rid}): {fields.get('status')}, queued={cid in queued}"
            )
        view = f"omr:{{{TENANT}}}:view:{ISSUE}:{fields.get('ch')}"
        if await redis.zscore(view, cid) is None:
            problems.append(f"contact {cid} ({rid}) not in its view {view}")
    rids = sorted(set(floor.sent)) + [rid for _, rid in floor.direct]
    existed: dict[str, str] = {}
    for rid in rids:
        made = by_rid.get(rid, [])
        record = await state.idempotency_record(T, "SubmitContact", rid)
        if len(made) > 1:
            problems.append(f"request {rid} made {len(made)} contacts: {made}")
        if (record is None) != (not made):
            problems.append(f"request {rid}: idempotency record {record}, contacts {made}")
        if record is not None and made and record[1] != made[0]:
            problems.append(f"request {rid}: record names {record[1]}, contact is {made[0]}")
        if made:
            existed[rid] = made[0]
    stray = set(by_rid) - set(rids)
    if stray:
        problems.append(f"contacts of request ids never sent: {sorted(stray)[:5]}")
    for rid, name in floor.submitted.items():
        if existed.get(rid) != _id(name):
            problems.append(f"request {rid} was answered {name}, now {existed.get(rid)}")
    problems += await _resubmit_all(api, floor, existed)
    after = await _contacts(redis)
    expected = len(floor.seeds) + len(rids)
    if len(after) != expected:
        problems.append(f"{len(after)} contacts after the resubmits, expected {expected}")
    waiting = int(await redis.zcard(f"omr:{{{TENANT}}}:queue"))
    if waiting != expected:
        problems.append(f"{waiting} contacts queued after the resubmits, expected {expected}")
    counts = {
        "requests": len(rids),
        "made_during_storm": len(existed),
        "absent_after_storm": len(rids) - len(existed),
        "contacts_after_resubmit": len(after),
    }
    return problems, counts


async def _contacts(redis: Any) -> dict[str, dict[str, str]]:
    prefix = f"omr:{{{TENANT}}}:contact:"
    names = [k async for k in redis.scan_iter(prefix + "*", count=1000)]
    async with redis.pipeline(transaction=False) as pipe:
        for key in names:
            pipe.hgetall(key)
        hashes = await pipe.execute()
    return {k[len(prefix) :]: dict(h) for k, h in zip(names, hashes, strict=True)}


async def _resubmit_all(api: Api, floor: Floor, existed: dict[str, str]) -> list[str]:
    problems: list[str] = []
    md = api.md(Role.PLATFORM)
    gate = asyncio.Semaphore(32)

    async def rpc(rid: str) -> None:
        async with gate:
            reply = await api.contacts.SubmitContact(submit_request(rid), metadata=md)
        if reply.attributes.get("rid") != rid:
            problems.append(f"resubmit {rid} answered {reply.attributes.get('rid')}")
        if rid in existed and _id(reply.name) != existed[rid]:
            problems.append(f"resubmit {rid} answered {reply.name}, not {existed[rid]}")

    async def direct(cid: str, rid: str) -> None:
        async with gate:
            result = await direct_enqueue(api, cid, rid)
        want = 0 if rid in existed else 1
        if (result.code, str(result.values[0])) != (want, cid):
            problems.append(f"enqueue {cid} again answered {result}, expected code {want}")

    await asyncio.gather(
        *(rpc(rid) for rid in sorted(set(floor.sent))),
        *(direct(cid, rid) for cid, rid in floor.direct),
    )
    return problems


async def clean_round(api: Api, floor: Floor, calls: int = 200) -> Figures:
    """`calls` uncancelled calls at once after the storm: all answered, all their own (a
    connection pool that leaked connections in use would refuse some)."""
    storm = Storm(api, floor, target=0, seed=1, left_alone=1.0)
    ops = (storm.get_contact, storm.get_agent, storm.read_contacts, storm.read_agents)
    await asyncio.gather(*(ops[i % len(ops)]() for i in range(calls)))
    return storm.figures
