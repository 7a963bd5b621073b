"""Three `omniroute serve` processes on one Redis, a simulated platform and ~30 simulated
agents, one replica killed with SIGKILL mid-run: counted afterwards, no contact went to two
agents, no agent was loaded past capacity, and no contact was lost."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import redis.asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from queues import keys
from queues.state import RedisState
from router.auth import Role
from router.domain import Agent, AgentId, Channel, TenantId
from router.pb.omniroute.v1 import agent_service_pb2 as agent_pb
from router.pb.omniroute.v1 import agent_service_pb2_grpc as agent_grpc
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import contact_service_pb2_grpc as contact_grpc
from router.pb.omniroute.v1 import resources_pb2 as pb
from router.rules import Rule
from router.supervision import Supervision

T = TenantId("t1")
CONTACTS = 2000
AGENTS = 30
CAPACITY = {Channel.VOICE: 1, Channel.CHAT: 3, Channel.EMAIL: 2}
CHANNELS = {
    pb.CHANNEL_VOICE: Channel.VOICE,
    pb.CHANNEL_CHAT: Channel.CHAT,
    pb.CHANNEL_EMAIL: Channel.EMAIL,
}
ISSUES = ("billing", "tech", "sales")
UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def replicas(
    redis_url: str, setup: dict[Role, str], tmp_path: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Three serving processes over the prepared tenant; each one's port in `.port`."""
    omniroute = Path(sys.executable).with_name("omniroute")
    env = {**os.environ, "REDIS_URL": redis_url}
    procs = []
    for i in range(3):
        port = free_port()
        proc = subprocess.Popen(
            [
                str(omniroute),
                "serve",
                "--port",
                str(port),
                "--no-dev-keys",
                "--offer-timeout",
                "1",
                "--max-missed-offers",
                "0",
                "--log-level",
                "error",
                "--data-dir",
                str(tmp_path / f"r{i}"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        proc.port = port  # type: ignore[attr-defined]
        procs.append(proc)
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_serving(port: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(300):
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"replica on port {port} never served")


@dataclass
class Record:
    """What the clients saw."""

    submitted: set[str] = field(default_factory=set)
    offers: defaultdict[tuple[str, int], set[str]] = field(default_factory=lambda: defaultdict(set))
    accepted: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    completed: set[str] = field(default_factory=set)
    declined: int = 0
    ignored: int = 0
    withdrawn: int = 0
    reconnects: int = 0
    resent: int = 0
    load_samples: int = 0


@pytest.fixture
async def setup(aredis: redis.asyncio.Redis, redis_url: str) -> AsyncIterator[dict[Role, str]]:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    sup = Supervision(RedisState(client))
    secrets_by_role = {}
    for role in (Role.PLATFORM, Role.AGENT):
        _, secret = await sup.create_api_key(T, role, "", role.value, "test")
        secrets_by_role[role] = secret
    await sup.declare_skills(T, ISSUES, "test")
    for issue in ISSUES:
        await sup.write_rule(T, Rule(issue=issue, skills={issue: 1}), "create", "test")
    rng = random.Random(7)
    for i in range(AGENTS):
        skills = {issue: rng.randint(1, 5) for issue in ISSUES}
        await sup.create_agent(T, Agent(AgentId(f"a{i:02d}"), skills, dict(CAPACITY)), "test")
    yield secrets_by_role
    await client.aclose()


@pytest.mark.slow
async def test_three_replicas_never_double_assign_overload_or_lose_a_contact(
    replicas: list[subprocess.Popen[bytes]],
    setup: dict[Role, str],
    aredis: redis.asyncio.Redis,
) -> None:
    await asyncio.gather(*(wait_serving(p.port) for p in replicas))  # type: ignore[attr-defined]
    channels = {
        i: grpc.aio.insecure_channel(f"127.0.0.1:{p.port}")  # type: ignore[attr-defined]
        for i, p in enumerate(replicas)
    }
    alive = set(channels)
    platform_md = (("authorization", f"Bearer {setup[Role.PLATFORM]}"),)
    agent_md = (("authorization", f"Bearer {setup[Role.AGENT]}"),)
    record = Record()
    rng = random.Random(11)
    done = asyncio.Event()
    violations: list[str] = []

    def pick() -> grpc.aio.Channel:
        return channels[rng.choice(sorted(alive))]

    async def submit(n: int) -> None:
        contact = pb.Contact(
            channel=rng.choice(list(CHANNELS)),
            issue=rng.choice(ISSUES),
            priority=rng.randint(0, 3),
        )
        contact.identities.append(
            pb.Identity(kind=pb.IDENTITY_KIND_PHONE, value=f"+1555{rng.randint(0, 400):04d}")
        )
        request = contact_pb.SubmitContactRequest(
            parent="tenants/t1", contact=contact, request_id=f"r{n}"
        )
        for _ in range(20):  # a dead replica: retry elsewhere with the same request id
            try:
                reply = await contact_grpc.ContactServiceStub(pick()).SubmitContact(
                    request, metadata=platform_md, timeout=10
                )
            except grpc.aio.AioRpcError as exc:
                assert exc.code() in (*UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), exc
                await asyncio.sleep(0.1)
                continue
            record.submitted.add(reply.name.rsplit("/", 1)[1])
            return
        raise AssertionError("could not submit")

    async def agent_call(method: str, request: object) -> None:
        """An agent RPC, retried on another replica when one dies: accept, decline and
        complete are idempotent by token, so a lost reply is safe to repeat."""
        for _ in range(20):
            try:
                stub = agent_grpc.AgentServiceStub(pick())
                await getattr(stub, method)(request, metadata=agent_md, timeout=10)
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in UNAVAILABLE:
                    raise
                await asyncio.sleep(0.1)
        raise AssertionError(f"{method} never reached a replica")

    async def handle(offer: pb.Offer, agent: str) -> None:
        cid = offer.contact.name.rsplit("/", 1)[1]
        roll = rng.random()
        holding = False  # this agent's accept of this token succeeded
        try:
            if roll < 0.08:
                record.ignored += 1  # let it expire (offer timeout 1 s)
                return
            if roll < 0.18:
                await agent_call(
                    "DeclineOffer", agent_pb.DeclineOfferRequest(name=offer.name, token=offer.token)
                )
                record.declined += 1
                return
            await agent_call(
                "AcceptOffer", agent_pb.AcceptOfferRequest(name=offer.name, token=offer.token)
            )
            holding = True
            record.accepted[cid].append(agent)
            await asyncio.sleep(rng.uniform(0.0, 0.15))
            await agent_call(
                "CompleteContact",
                agent_pb.CompleteContactRequest(
                    name=offer.name, token=offer.token, outcome=pb.OUTCOME_RESOLVED
                ),
            )
            record.completed.add(cid)
        except grpc.aio.AioRpcError as exc:
            # A decline or accept may come too late (the offer expired and the contact went
            # on, perhaps to another agent): FAILED_PRECONDITION. Once accepted, the
            # complete must succeed.
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION or holding:
                violations.append(f"{agent} {cid}: {exc.code()} {exc.details()}")

    async def agent_loop(agent: str) -> None:
        name = f"tenants/t1/agents/{agent}"
        await agent_grpc.AgentServiceStub(pick()).SignIn(
            agent_pb.SignInRequest(name=name), metadata=agent_md, timeout=10
        )
        tasks: set[asyncio.Task[None]] = set()
        # A reconnected stream re-sends the offers still pending (its contract): a client
        # acts on each (contact, token) once, as a real agent desktop does.
        seen: set[tuple[str, int]] = set()
        while not done.is_set():
            stub = agent_grpc.AgentServiceStub(pick())
            call = stub.StreamOffers(agent_pb.StreamOffersRequest(name=name), metadata=agent_md)
            try:
                async for event in call:
                    if event.HasField("offer"):
                        cid = event.offer.contact.name.rsplit("/", 1)[1]
                        record.offers[(cid, event.offer.token)].add(agent)
                        if (cid, event.offer.token) in seen:
                            record.resent += 1
                            continue
                        seen.add((cid, event.offer.token))
                        task = asyncio.create_task(handle(event.offer, agent))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    elif event.HasField("withdrawn"):
                        record.withdrawn += 1
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.CANCELLED:
                    assert exc.code() in UNAVAILABLE, exc
                record.reconnects += 1
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                call.cancel()
                raise
        await asyncio.gather(*tasks, return_exceptions=True)

    async def sample_loads() -> None:
        agents = [f"a{i:02d}" for i in range(AGENTS)]
        while not done.is_set():
            async with aredis.pipeline(transaction=True) as pipe:
                for a in agents:
                    pipe.hgetall(keys.agent_load(T, AgentId(a)))
                loads = await pipe.execute()
            for a, load in zip(agents, loads, strict=True):
                for ch, n in load.items():
                    if int(n) > CAPACITY[Channel(ch)] or int(n) < 0:
                        violations.append(f"{a} holds {n} {ch}")
            record.load_samples += 1
            await asyncio.sleep(0.05)

    agents = [asyncio.create_task(agent_loop(f"a{i:02d}")) for i in range(AGENTS)]
    sampler = asyncio.create_task(sample_loads())
    semaphore = asyncio.Semaphore(40)

    async def limited(n: int) -> None:
        async with semaphore:
            await submit(n)

    first = [asyncio.create_task(limited(n)) for n in range(CONTACTS // 3)]
    await asyncio.gather(*first)
    replicas[2].kill()  # SIGKILL: no graceful anything
    alive.discard(2)
    await asyncio.gather(*(limited(n) for n in range(CONTACTS // 3, CONTACTS)))
    assert len(record.submitted) == CONTACTS

    async def drained() -> int:
        async with aredis.pipeline(transaction=False) as pipe:
            for cid in record.submitted:
                pipe.hget(keys.contact(T, cid), "status")  # type: ignore[arg-type]
            statuses = await pipe.execute()
        return sum(s == "completed" for s in statuses)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90
    while (count := await drained()) < CONTACTS:
        if loop.time() >= deadline:
            stuck = {}
            for cid in record.submitted - record.completed:
                fields = await aredis.hgetall(keys.contact(T, cid))  # type: ignore[arg-type]
                stuck[cid] = {k: fields.get(k) for k in ("status", "agent", "token", "declined")}
            raise AssertionError(f"only {count} of {CONTACTS} completed; stuck: {stuck}")
        await asyncio.sleep(0.2)
        # Consistency mid-drain, read atomically: each contact in exactly one place.
        async with aredis.pipeline(transaction=True) as pipe:
            pipe.zrange(keys.queue(T), 0, -1)
            pipe.zrange(keys.offers(T), 0, -1)
            for cid in sorted(record.submitted):
                pipe.hget(keys.contact(T, cid), "status")  # type: ignore[arg-type]
            queued, offered, *statuses = await pipe.execute()
        for cid, status in zip(sorted(record.submitted), statuses, strict=True):
            places = (cid in set(queued), cid in set(offered), status in ("assigned", "completed"))
            assert sum(places) == 1, (cid, status, places)
            assert (status == "queued") == places[0] and (status == "offered") == places[1]
    done.set()
    sampler.cancel()
    for task in agents:
        task.cancel()
    await asyncio.gather(*agents, sampler, return_exceptions=True)
    for channel in channels.values():
        await channel.close()

    assert violations == []
    # No contact offered to two agents under one token; each accepted by exactly one agent.
    assert {k: v for k, v in record.offers.items() if len(v) != 1} == {}
    assert {cid: by for cid, by in record.accepted.items() if len(by) != 1} == {}
    assert set(record.accepted) == record.submitted == record.completed
    # Everything drained: nothing queued, offered or held; loads back to zero.
    assert await aredis.zcard(keys.queue(T)) == 0
    assert await aredis.zcard(keys.offers(T)) == 0
    for i in range(AGENTS):
        a = AgentId(f"a{i:02d}")
        assert await aredis.hlen(keys.agent_contacts(T, a)) == 0
        load = await aredis.hgetall(keys.agent_load(T, a))
        assert all(int(n) == 0 for n in load.values()), (a, load)
    # The run exercised what it claims to: declines, expiries, reconnects, samples.
    assert record.declined > 0 and record.ignored > 0 and record.withdrawn > 0
    assert record.reconnects > 0 and record.load_samples > 5
