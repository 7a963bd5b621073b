"""Simulated platforms and agents that drive the replicas over the real gRPC API, a sampler
of the agents' load hashes, and a log of every state-change notice the scripts publish.

Every client call is recorded as invoke, then ok, fail or unknown (timeouts, cancellations,
``UNAVAILABLE`` and ``INTERNAL`` are unknown: the call may have happened). Agents accept,
decline, ignore, accept too late, cut their stream with an offer pending, or vanish and come
back; an agent whose stream or replica stops answering moves to another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import redis.asyncio as aioredis

from queues import keys
from router.chaos.history import Recorder
from router.domain import TenantId
from router.pb.omniroute.v1 import agent_service_pb2 as agent_pb
from router.pb.omniroute.v1 import agent_service_pb2_grpc as agent_grpc
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import contact_service_pb2_grpc as contact_grpc
from router.pb.omniroute.v1 import resources_pb2 as pb

#: Channel numbers of the API and their names in Redis.
CHANNELS: dict[Any, str] = {
    pb.CHANNEL_VOICE: "voice",
    pb.CHANNEL_CHAT: "chat",
    pb.CHANNEL_SMS: "sms",
    pb.CHANNEL_EMAIL: "email",
    pb.CHANNEL_WHATSAPP: "whatsapp",
    pb.CHANNEL_SOCIAL: "social",
}
CAPACITY: dict[str, int] = {
    "voice": 1,
    "chat": 3,
    "sms": 2,
    "email": 2,
    "whatsapp": 2,
    "social": 2,
}
ISSUES = ("billing", "router_broken", "password_reset")
CALL_TIMEOUT_S = 2.0
#: Codes after which a call may or may not have happened.
_UNKNOWN_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)


def short(name: str) -> str:
    """The last segment of a resource name."""
    return name.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How agents answer offers: probabilities (the rest accept)."""

    decline: float = 0.07
    ignore: float = 0.05
    late_accept: float = 0.04
    stream_cut: float = 0.01
    vanish: float = 0.006
    handle_s: tuple[float, float] = (0.05, 0.4)
    think_s: tuple[float, float] = (0.01, 0.12)


@dataclass
class Floor:
    """What platforms, agents, sampler and nemesis share."""

    rec: Recorder
    rng: random.Random
    targets: list[str]
    keys: dict[tuple[str, str], str]  # (tenant, role) -> secret
    offer_timeout_s: float
    behaviour: Behaviour = field(default_factory=Behaviour)
    channels: list[grpc.aio.Channel] = field(default_factory=list)
    contacts: dict[str, set[str]] = field(default_factory=dict)  # tenant -> ids
    unresolved: dict[str, set[str]] = field(default_factory=dict)  # tenant -> request ids
    agents: list[AgentSim] = field(default_factory=list)
    draining: bool = False
    stopping: bool = False

    def open_channels(self) -> None:
        """One channel per replica; they reconnect by themselves after restarts."""
        options = [
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 500),
            ("grpc.enable_retries", 0),
        ]
        self.channels = [grpc.aio.insecure_channel(t, options=options) for t in self.targets]

    async def close_channels(self) -> None:
        """Close every channel."""
        for channel in self.channels:
            await channel.close(None)

    def md(self, tenant: str, role: str) -> tuple[tuple[str, str], ...]:
        """Call metadata with the tenant's key of `role`."""
        return (("authorization", f"Bearer {self.keys[(tenant, role)]}"),)

    def pending_on(self, replica: int) -> list[list[Any]]:
        """Offers pending at agents whose stream is on `replica`: [tenant, contact, token,
        agent] (for the recovery figures)."""
        return [
            [a.tenant, cid, tok, a.agent_id]
            for a in self.agents
            if a.replica == replica and a.present
            for cid, (tok, _ch) in a.pending.items()
        ]


async def call(
    rec: Recorder,
    op_id: int,
    fn: Callable[..., Any],
    request: Any,
    md: Any,
    timeout_s: float = CALL_TIMEOUT_S,
) -> tuple[str, Any]:
    """Make one unary call and record its end; returns (ok|fail|unknown, reply or code)."""
    try:
        reply = await fn(request, metadata=md, timeout=timeout_s)
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        kind = "unknown" if code in _UNKNOWN_CODES else "fail"
        rec.complete(op_id, kind, error=code.name)
        return kind, code
    except asyncio.CancelledError:
        rec.unknown(op_id, error="cancelled")
        raise
    return "ok", reply


class Platform:
    """A contact-center platform of one tenant: submits contacts on every channel at a
    rate, retries unknown submits with the same idempotency key, cancels a few."""

    def __init__(self, floor: Floor, tenant: str, rate_per_s: float, cancel_p: float = 0.03):
        self.floor = floor
        self.tenant = tenant
        self.rate_per_s = rate_per_s
        self.cancel_p = cancel_p
        self.process = f"platform:{tenant}"
        self.sent = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(200)

    async def run(self, until: float) -> None:
        """Submit until the monotonic time `until`, then wait for submits in flight."""
        rng = self.floor.rng
        try:
            while time.monotonic() < until and not self.floor.stopping:
                await asyncio.sleep(min(1.0, rng.expovariate(self.rate_per_s)))
                await self._slots.acquire()
                self.sent += 1
                task = asyncio.create_task(self._submit(self.sent))
                self._tasks.add(task)
                task.add_done_callback(self._done)
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=60.0)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _submit(self, n: int) -> None:
        floor, rng = self.floor, self.floor.rng
        request_id = f"{self.tenant}-{n}"
        channel = rng.choice(list(CHANNELS))
        contact = pb.Contact(channel=channel, issue=rng.choice(ISSUES), priority=rng.randint(0, 3))
        if rng.random() < 0.3:
            phone = f"+1555{rng.randrange(400):04d}"
            contact.identities.append(pb.Identity(kind=pb.IDENTITY_KIND_PHONE, value=phone))
        request = contact_pb.SubmitContactRequest(
            parent=f"tenants/{self.tenant}", contact=contact, request_id=request_id
        )
        md = floor.md(self.tenant, "platform")
        contact_id = ""
        deadline = time.monotonic() + 30.0
        for attempt in range(12):
            if time.monotonic() > deadline:
                break
            stub = contact_grpc.ContactServiceStub(
                floor.channels[(n + attempt) % len(floor.channels)]
            )
            op = floor.rec.invoke(
                self.process,
                "submit",
                tenant=self.tenant,
                data={"request_id": request_id},
                channel=CHANNELS[channel],
            )
            kind, reply = await call(floor.rec, op, stub.SubmitContact, request, md)
            if kind == "ok":
                contact_id = short(reply.name)
                floor.rec.ok(op, contact=contact_id, reply=contact_id)
                break
            if kind == "fail":
                break
            await asyncio.sleep(0.2 + 0.3 * rng.random())
        if not contact_id:
            floor.unresolved.setdefault(self.tenant, set()).add(request_id)
            return
        floor.contacts.setdefault(self.tenant, set()).add(contact_id)
        if rng.random() < self.cancel_p and not floor.draining:
            await asyncio.sleep(rng.uniform(0.05, 1.5))
            stub = contact_grpc.ContactServiceStub(rng.choice(floor.channels))
            op = floor.rec.invoke(self.process, "cancel", tenant=self.tenant, contact=contact_id)
            cancel = contact_pb.CancelContactRequest(
                name=f"tenants/{self.tenant}/contacts/{contact_id}", reason="customer_hung_up"
            )
            kind, reply = await call(floor.rec, op, stub.CancelContact, cancel, md)
            if kind == "ok":
                floor.rec.ok(op, reply=short(reply.name))


class AgentSim:
    """One agent desktop: signs in, keeps a stream open on some replica, answers offers."""

    def __init__(self, floor: Floor, tenant: str, agent_id: str) -> None:
        self.floor = floor
        self.tenant = tenant
        self.agent_id = agent_id
        self.process = f"agent:{tenant}:{agent_id}"
        self.name = f"tenants/{tenant}/agents/{agent_id}"
        self.replica = floor.rng.randrange(len(floor.targets))
        self.present = True
        self.pending: dict[str, tuple[int, str]] = {}  # contact -> (token, channel)
        #: Contacts the stream said are held while their accept was still unanswered.
        self.held_hint: dict[str, tuple[int, str, str]] = {}
        self.held: dict[str, tuple[int, str, str]] = {}  # contact -> (token, channel, name)
        self._thinking: dict[str, asyncio.Task[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stream: Any = None
        self._back = asyncio.Event()
        self._back.set()
        self._cut = False

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        """Metadata of the tenant's agent key."""
        return self.floor.md(self.tenant, "agent")

    def _stub(self) -> agent_grpc.AgentServiceAsyncStub:
        return agent_grpc.AgentServiceStub(self.floor.channels[self.replica])

    def move(self) -> None:
        """Use another replica from now on."""
        self.replica = (self.replica + 1 + self.floor.rng.randrange(2)) % len(self.floor.targets)

    async def run(self, until: float) -> None:
        """Sign in and stream until `until` (monotonic) or the run stops."""
        try:
            while time.monotonic() < until and not self.floor.stopping:
                await self._back.wait()
                if not await self._sign_in():
                    self.move()
                    await asyncio.sleep(0.2)
                    continue
                await self._stream_once(until)
                if not self.floor.stopping and self.present:
                    await asyncio.sleep(0.05 + 0.2 * self.floor.rng.random())
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _sign_in(self) -> bool:
        rec = self.floor.rec
        op = rec.invoke(self.process, "sign_in", tenant=self.tenant, agent=self.agent_id)
        kind, _ = await call(
            rec, op, self._stub().SignIn, agent_pb.SignInRequest(name=self.name), self.md
        )
        if kind == "ok":
            rec.ok(op)
        return kind == "ok"

    async def _stream_once(self, until: float) -> None:
        """One stream on the current replica, with a watchdog that moves on when the
        replica stops answering or the agent was signed out behind its back."""
        rec = self.floor.rec
        self._stream = self._stub().StreamOffers(
            agent_pb.StreamOffersRequest(name=self.name), metadata=self.md
        )
        if self.held:
            # The desktop contract after a reconnect: re-send AcceptOffer for every
            # contact held (idempotent; after a Redis restart that lost the accept, it
            # re-asserts it during the reconciliation instead of losing the contact).
            self._spawn(self._reassert_held())
        reader = asyncio.create_task(self._read(self._stream))
        watchdog = asyncio.create_task(self._watchdog())
        try:
            await asyncio.wait(
                [reader, watchdog],
                timeout=max(0.0, until - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            self._stream.cancel()
            for task in (reader, watchdog):
                task.cancel()
            await asyncio.gather(reader, watchdog, return_exceptions=True)
            if not self._cut and self.present and not self.floor.stopping:
                rec.add("info", self.process, op="stream_lost", data={"replica": self.replica})
                self.move()
            self._cut = False

    async def _read(self, stream: Any) -> None:
        rec = self.floor.rec
        with contextlib.suppress(grpc.aio.AioRpcError):
            async for event in stream:
                if event.HasField("offer"):
                    offer = event.offer
                    cid = short(offer.contact.name)
                    channel = CHANNELS.get(offer.contact.channel, "")
                    rec.add(
                        "recv",
                        self.process,
                        op="offer",
                        tenant=self.tenant,
                        agent=self.agent_id,
                        contact=cid,
                        token=int(offer.token),
                        channel=channel,
                    )
                    if cid in self.pending or cid in self.held:
                        continue
                    self.pending[cid] = (int(offer.token), channel)
                    self._spawn(self._answer(offer, cid, channel))
                elif event.HasField("held"):
                    self._held_notice(event.held)
                elif event.HasField("reconciling"):
                    rec.add("recv", self.process, op="reconciling", tenant=self.tenant)
                    self._spawn(self._reassert_held())
                elif event.HasField("withdrawn"):
                    w = event.withdrawn
                    cid = short(w.name)
                    rec.add(
                        "recv",
                        self.process,
                        op="withdrawn",
                        tenant=self.tenant,
                        agent=self.agent_id,
                        contact=cid,
                        token=int(w.token),
                        data={"why": w.reason},
                    )
                    if self.pending.get(cid, (0, ""))[0] == int(w.token):
                        self.pending.pop(cid, None)
                        task = self._thinking.pop(cid, None)
                        if task is not None:
                            task.cancel()

    async def _reassert_held(self) -> None:
        rec = self.floor.rec
        for cid, (token, channel, name) in list(self.held.items()):
            if cid not in self.held:
                continue
            op = rec.invoke(
                self.process,
                "accept",
                tenant=self.tenant,
                agent=self.agent_id,
                contact=cid,
                token=token,
                channel=channel,
                data={"reassert": True},
            )
            request = agent_pb.AcceptOfferRequest(name=name, token=token)
            kind, reply = await call(rec, op, self._stub().AcceptOffer, request, self.md)
            if kind == "ok":
                rec.ok(op, reply=short(reply.name))

    def _held_notice(self, offer: pb.Offer) -> None:
        """The stream says this agent holds a contact. Normally the accept's reply said so
        first; when that reply was lost (its replica died) and the retries gave up, this
        is how the agent learns it holds the contact, and it completes it."""
        cid = short(offer.contact.name)
        token = int(offer.token)
        channel = CHANNELS.get(offer.contact.channel, "")
        self.floor.rec.add(
            "recv",
            self.process,
            op="held",
            tenant=self.tenant,
            agent=self.agent_id,
            contact=cid,
            token=token,
            channel=channel,
        )
        if cid in self.held:
            return
        if cid in self.pending:  # an accept in flight: it completes, or gives up on this
            self.held_hint[cid] = (token, channel, offer.name)
            return
        self.held[cid] = (token, channel, offer.name)
        self._spawn(self._complete_later(cid))

    async def _complete_later(self, cid: str) -> None:
        rng, b = self.floor.rng, self.floor.behaviour
        await asyncio.sleep(rng.uniform(*b.handle_s))
        await self._complete(cid)

    async def _watchdog(self) -> None:
        """Heartbeat each second; move when the replica does not answer, sign in again
        when presence lapsed (the stream alone would not sign the agent back in)."""
        rec = self.floor.rec
        while True:
            await asyncio.sleep(1.0)
            request = agent_pb.HeartbeatRequest(name=self.name)
            try:
                reply = await self._stub().Heartbeat(request, metadata=self.md, timeout=1.0)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    if not await self._sign_in():
                        return
                    continue
                return
            if reply.state == pb.AGENT_STATE_AWAY:
                op = rec.invoke(self.process, "set_available", tenant=self.tenant)
                kind, _ = await call(
                    rec,
                    op,
                    self._stub().SetAgentState,
                    agent_pb.SetAgentStateRequest(name=self.name, state=pb.AGENT_STATE_AVAILABLE),
                    self.md,
                )
                if kind == "ok":
                    rec.ok(op)

    def _spawn(self, coro: Any, contact: str | None = None) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _choose(self) -> str:
        b, r = self.floor.behaviour, self.floor.rng.random()
        if self.floor.draining:
            return "accept"
        for name, p in (
            ("decline", b.decline),
            ("ignore", b.ignore),
            ("late_accept", b.late_accept),
            ("stream_cut", b.stream_cut),
            ("vanish", b.vanish),
        ):
            if r < p:
                return name
            r -= p
        return "accept"

    async def _answer(self, offer: pb.Offer, cid: str, channel: str) -> None:
        rng, b = self.floor.rng, self.floor.behaviour
        plan = self._choose()
        me = asyncio.current_task()
        assert me is not None
        self._thinking[cid] = me
        try:
            await asyncio.sleep(rng.uniform(*b.think_s))
        finally:
            self._thinking.pop(cid, None)
        if not self.present:
            return
        token = int(offer.token)
        if plan == "vanish":
            self._spawn(self.vanish())
            return
        if plan == "stream_cut":
            self.cut_stream()
            return
        if plan == "ignore":
            await asyncio.sleep(self.floor.offer_timeout_s + 0.5)
            self.pending.pop(cid, None)
            return
        if plan == "decline":
            await self._decline(offer, cid, token)
            return
        if plan == "late_accept":
            await asyncio.sleep(self.floor.offer_timeout_s + rng.uniform(0.2, 0.6))
        if await self._accept(offer, cid, token, channel):
            await asyncio.sleep(rng.uniform(*b.handle_s))
            await self._complete(cid)

    async def _decline(self, offer: pb.Offer, cid: str, token: int) -> None:
        rec = self.floor.rec
        op = rec.invoke(
            self.process,
            "decline",
            tenant=self.tenant,
            agent=self.agent_id,
            contact=cid,
            token=token,
        )
        request = agent_pb.DeclineOfferRequest(name=offer.name, token=token, reason="busy")
        kind, reply = await call(rec, op, self._stub().DeclineOffer, request, self.md)
        if kind == "ok":
            rec.ok(op, reply=short(reply.name))
        self.pending.pop(cid, None)

    async def _accept(self, offer: pb.Offer, cid: str, token: int, channel: str) -> bool:
        """Accept, retrying an unknown answer with the same token (accept is idempotent)."""
        rec = self.floor.rec
        request = agent_pb.AcceptOfferRequest(name=offer.name, token=token)
        try:
            for _ in range(6):
                op = rec.invoke(
                    self.process,
                    "accept",
                    tenant=self.tenant,
                    agent=self.agent_id,
                    contact=cid,
                    token=token,
                    channel=channel,
                )
                kind, reply = await call(rec, op, self._stub().AcceptOffer, request, self.md)
                if kind == "ok":
                    rec.ok(op, reply=short(reply.name))
                    self.held[cid] = (token, channel, offer.name)
                    return True
                if kind == "fail":
                    return False
                self.move()
                await asyncio.sleep(0.2)
            hint = self.held_hint.get(cid)
            if hint is not None and hint[0] == token:  # the stream said we hold it
                self.held[cid] = hint
                return True
            return False
        finally:
            self.pending.pop(cid, None)
            self.held_hint.pop(cid, None)

    async def _complete(self, cid: str) -> None:
        """Complete a held contact once present, retrying unknown answers."""
        rec = self.floor.rec
        deadline = time.monotonic() + 60.0
        while cid in self.held and time.monotonic() < deadline:
            await self._back.wait()
            token, channel, name = self.held[cid]
            op = rec.invoke(
                self.process,
                "complete",
                tenant=self.tenant,
                agent=self.agent_id,
                contact=cid,
                token=token,
                channel=channel,
            )
            request = agent_pb.CompleteContactRequest(
                name=name, token=token, outcome=pb.OUTCOME_RESOLVED
            )
            kind, reply = await call(rec, op, self._stub().CompleteContact, request, self.md)
            if kind == "ok":
                rec.ok(op, reply=short(reply.name))
                self.held.pop(cid, None)
                return
            if kind == "fail":
                self.held.pop(cid, None)
                return
            self.move()
            await asyncio.sleep(0.3)

    def cut_stream(self) -> None:
        """Cut the offer stream with offers pending; the agent reconnects at once."""
        pending = [[self.tenant, c, t, self.agent_id] for c, (t, _) in self.pending.items()]
        self.floor.rec.add("fault", self.process, data={"kind": "stream_cut", "pending": pending})
        for cid in list(self._thinking):
            self._thinking.pop(cid).cancel()
        self.pending.clear()
        self._cut = True
        if self._stream is not None:
            self._stream.cancel()

    async def vanish(self, away_s: float | None = None) -> None:
        """Disappear without a word (no stream, no heartbeat, no answers) past the
        presence timeout, then come back and finish the contacts still held."""
        if not self.present:
            return
        pending = [[self.tenant, c, t, self.agent_id] for c, (t, _) in self.pending.items()]
        self.floor.rec.add("fault", self.process, data={"kind": "agent_vanish", "pending": pending})
        self.present = False
        self._back.clear()
        for cid in list(self._thinking):
            self._thinking.pop(cid).cancel()
        self.pending.clear()
        self._cut = True
        if self._stream is not None:
            self._stream.cancel()
        await asyncio.sleep(away_s if away_s is not None else self.floor.rng.uniform(3.5, 6.0))
        self.come_back()

    def come_back(self) -> None:
        """Return from a vanish."""
        if not self.present:
            self.present = True
            self._back.set()
            self.floor.rec.add("info", self.process, op="returned")

    def finish_held(self) -> None:
        """Complete, again, every contact still held (for the drain)."""
        for cid in list(self.held):
            self._spawn(self._complete(cid))


class Sampler:
    """Reads every agent's load hash a few times a second, straight from Redis."""

    def __init__(self, floor: Floor, redis_url: str, period_s: float = 0.25) -> None:
        self.floor = floor
        self.redis_url = redis_url
        self.period_s = period_s
        self.samples = 0

    async def run(self, until: float) -> None:
        """Sample until `until` (monotonic) or the run stops; Redis outages are skipped."""
        client = aioredis.Redis.from_url(
            self.redis_url, decode_responses=True, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        agents = [(a.tenant, a.agent_id) for a in self.floor.agents]
        try:
            while time.monotonic() < until and not self.floor.stopping:
                await asyncio.sleep(self.period_s)
                try:
                    async with client.pipeline(transaction=False) as pipe:
                        for tenant, agent in agents:
                            pipe.hgetall(keys.agent_load(TenantId(tenant), agent))  # type: ignore[arg-type]
                        loads = await pipe.execute()
                except (aioredis.RedisError, OSError):
                    continue
                for (tenant, agent), load in zip(agents, loads, strict=True):
                    nonzero = {k: int(v) for k, v in load.items() if int(v)}
                    if nonzero:
                        self.samples += 1
                        self.floor.rec.add(
                            "sample", "sampler", tenant=tenant, agent=agent, data={"load": nonzero}
                        )
        finally:
            await client.aclose()


class NoticeLog:
    """Records every notice the scripts publish (commit order, as Redis sent them)."""

    def __init__(self, rec: Recorder, redis_url: str) -> None:
        self.rec = rec
        self.redis_url = redis_url
        self.received = 0
        self.reconnects = 0

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after Redis restarts."""
        while True:
            client = aioredis.Redis.from_url(
                self.redis_url, decode_responses=True, socket_connect_timeout=1.0
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(keys.EVENTS_PATTERN)
                async for message in pubsub.listen():
                    if message.get("type") == "pmessage":
                        self._record(str(message["channel"]), str(message["data"]))
            except asyncio.CancelledError:
                raise
            except (aioredis.RedisError, OSError):
                self.reconnects += 1
                await asyncio.sleep(0.2)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    await client.aclose()

    def _record(self, channel: str, data: str) -> None:
        import json

        try:
            event = json.loads(data)
        except ValueError:
            return
        kind = event.get("ev")
        if kind not in (
            "queued",
            "offered",
            "assigned",
            "requeued",
            "withdrawn",
            "completed",
            "abandoned",
        ):
            return
        self.received += 1
        self.rec.add(
            "server",
            "redis",
            op=kind,
            tenant=keys.tenant_of_channel(channel),
            contact=str(event.get("c", "")),
            agent=str(event["a"]) if event.get("a") else None,
            token=int(event["tok"]) if event.get("tok") is not None else None,
        )
