"""An in-process Omniroute replica on port 0 over the test Redis, a real grpc.aio channel,
and API keys for every role of tenants ``t1`` and ``t2``."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
import redis.asyncio

from router.auth import Role
from router.client import declare_skills
from router.config import Settings
from router.domain import TenantId
from router.pb.omniroute.v1 import admin_service_pb2_grpc as admin_grpc
from router.pb.omniroute.v1 import agent_service_pb2 as agent_pb
from router.pb.omniroute.v1 import agent_service_pb2_grpc as agent_grpc
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import contact_service_pb2_grpc as contact_grpc
from router.pb.omniroute.v1 import resources_pb2 as pb
from router.pb.omniroute.v1 import supervisor_service_pb2 as sup_pb
from router.pb.omniroute.v1 import supervisor_service_pb2_grpc as sup_grpc
from router.server import Service

TENANTS = ("t1", "t2")
#: The agent the agent-bound key of each tenant acts for.
BOUND_AGENT = "a1"
Metadata = tuple[tuple[str, str], ...]


def replica_settings(**overrides: Any) -> Settings:
    """Settings of a test replica: port 0, no dev keys, quick loops, no drain wait."""
    base: dict[str, Any] = {
        "port": 0,
        "dev_keys": False,
        "offer_timeout_s": 30.0,
        "tick_s": 0.2,
        "sweep_s": 0.05,
        "mirror_refresh_s": 1.0,
        "grace_s": 0.0,
    }
    base.update(overrides)
    return Settings(**base)


@dataclass
class Api:
    """A running replica and a client with a stub per service and a key per role."""

    service: Service
    channel: grpc.aio.Channel
    keys: dict[tuple[str, Role], str]
    bound_keys: dict[str, str]
    contacts: contact_grpc.ContactServiceStub = field(init=False)
    agents: agent_grpc.AgentServiceStub = field(init=False)
    sup: sup_grpc.SupervisorServiceStub = field(init=False)
    admin: admin_grpc.AdminServiceStub = field(init=False)

    def __post_init__(self) -> None:
        self.contacts = contact_grpc.ContactServiceStub(self.channel)
        self.agents = agent_grpc.AgentServiceStub(self.channel)
        self.sup = sup_grpc.SupervisorServiceStub(self.channel)
        self.admin = admin_grpc.AdminServiceStub(self.channel)

    def md(self, role: Role, tenant: str = "t1") -> Metadata:
        """Call metadata carrying the (unbound) key of `role` in `tenant`."""
        return (("authorization", f"Bearer {self.keys[(tenant, role)]}"),)

    def bound(self, tenant: str = "t1") -> Metadata:
        """Metadata of the agent key bound to agent ``a1`` of `tenant`."""
        return (("authorization", f"Bearer {self.bound_keys[tenant]}"),)

    # --- helpers used by many tests ---------------------------------------------------

    async def declare(self, *skills: str, tenant: str = "t1") -> None:
        """Declare skills in the catalogue (as a set-up script does before its rules)."""
        await declare_skills(
            self.sup, f"tenants/{tenant}", skills, self.md(Role.SUPERVISOR, tenant)
        )

    async def create_rule(
        self,
        issue: str,
        skills: dict[str, int],
        *,
        tenant: str = "t1",
        weights: pb.ScoringWeights | None = None,
    ) -> pb.RoutingRule:
        rule = pb.RoutingRule(
            required_skills=[
                pb.SkillRequirement(skill=s, min_proficiency=lvl) for s, lvl in skills.items()
            ],
            weights=weights,
        )
        await self.declare(*skills, tenant=tenant)
        return await self.sup.CreateRoutingRule(
            sup_pb.CreateRoutingRuleRequest(
                parent=f"tenants/{tenant}", issue=issue, routing_rule=rule
            ),
            metadata=self.md(Role.SUPERVISOR, tenant),
        )

    async def create_agent(
        self,
        agent_id: str,
        skills: dict[str, int],
        capacity: dict[int, int] | None = None,
        *,
        tenant: str = "t1",
        groups: tuple[str, ...] = (),
    ) -> pb.Agent:
        caps = capacity or {pb.CHANNEL_VOICE: 1, pb.CHANNEL_CHAT: 3, pb.CHANNEL_EMAIL: 2}
        agent = pb.Agent(
            display_name=agent_id.upper(),
            skills=[pb.Skill(skill=s, proficiency=lvl) for s, lvl in skills.items()],
            capacities=[pb.ChannelCapacity(channel=c, max_contacts=n) for c, n in caps.items()],
            groups=groups,
        )
        return await self.sup.CreateAgent(
            sup_pb.CreateAgentRequest(parent=f"tenants/{tenant}", agent_id=agent_id, agent=agent),
            metadata=self.md(Role.SUPERVISOR, tenant),
        )

    async def sign_in(self, agent_id: str, *, tenant: str = "t1") -> pb.Agent:
        return await self.agents.SignIn(
            agent_pb.SignInRequest(name=f"tenants/{tenant}/agents/{agent_id}"),
            metadata=self.md(Role.AGENT, tenant),
        )

    async def submit(
        self,
        issue: str,
        channel: int = pb.CHANNEL_VOICE,
        *,
        tenant: str = "t1",
        phone: str = "",
        priority: int = 0,
        request_id: str = "",
    ) -> pb.Contact:
        contact = pb.Contact(channel=channel, issue=issue, priority=priority)
        if phone:
            contact.identities.append(pb.Identity(kind=pb.IDENTITY_KIND_PHONE, value=phone))
        return await self.contacts.SubmitContact(
            contact_pb.SubmitContactRequest(
                parent=f"tenants/{tenant}", contact=contact, request_id=request_id
            ),
            metadata=self.md(Role.PLATFORM, tenant),
        )

    async def get_agent(self, agent_id: str, *, tenant: str = "t1") -> pb.Agent:
        return await self.sup.GetAgent(
            sup_pb.GetAgentRequest(name=f"tenants/{tenant}/agents/{agent_id}"),
            metadata=self.md(Role.SUPERVISOR, tenant),
        )

    async def get_contact(self, name: str, *, tenant: str = "t1") -> pb.Contact:
        return await self.contacts.GetContact(
            contact_pb.GetContactRequest(name=name), metadata=self.md(Role.PLATFORM, tenant)
        )

    def stream(self, agent_id: str, *, tenant: str = "t1") -> OfferStream:
        """Open the agent's offer stream (close it with ``await stream.close()``)."""
        call = self.agents.StreamOffers(
            agent_pb.StreamOffersRequest(name=f"tenants/{tenant}/agents/{agent_id}"),
            metadata=self.md(Role.AGENT, tenant),
        )
        return OfferStream(call)


class OfferStream:
    """An agent's StreamOffers call, read in the background into a queue."""

    def __init__(self, call: Any) -> None:
        self.call = call
        self.events: asyncio.Queue[agent_pb.OfferEvent] = asyncio.Queue()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for event in self.call:
            await self.events.put(event)

    async def next(self, wait_s: float = 15.0) -> agent_pb.OfferEvent:
        """The next event (waiting at most `wait_s` for it to arrive)."""
        return await asyncio.wait_for(self.events.get(), wait_s)

    async def next_offer(self, wait_s: float = 15.0) -> pb.Offer:
        """The next offer, skipping withdrawals."""
        while True:
            event = await self.next(wait_s)
            if event.HasField("offer"):
                return event.offer

    async def close(self) -> None:
        self.call.cancel()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


ApiFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(redis_url: str, aredis: redis.asyncio.Redis) -> AsyncIterator[ApiFactory]:
    """Start replicas with `Settings` overrides; keys are created on the first one."""
    running: list[tuple[Service, grpc.aio.Channel]] = []
    keys: dict[tuple[str, Role], str] = {}
    bound: dict[str, str] = {}

    async def start(**overrides: Any) -> Api:
        service = Service(replica_settings(**overrides), redis_url)
        port = await service.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        running.append((service, channel))
        if not keys:
            for tenant in TENANTS:
                t = TenantId(tenant)
                for role in Role:
                    _, secret = await service.supervision.create_api_key(
                        t, role, "", f"test {role.value}", "test"
                    )
                    keys[(tenant, role)] = secret
                _, secret = await service.supervision.create_api_key(
                    t, Role.AGENT, BOUND_AGENT, "bound agent key", "test"
                )
                bound[tenant] = secret
        return Api(service, channel, keys, bound)

    yield start
    for service, channel in reversed(running):
        await channel.close()
        await service.stop()


@pytest.fixture
async def api(make_api: ApiFactory) -> Api:
    """One replica with the default test settings (offers wait 30 s)."""
    return await make_api()


async def snapshot(client: redis.asyncio.Redis, *, skip: Iterable[str] = ()) -> str:
    """A digest of every key in Redis with its type and value; keys containing any of
    `skip` are left out (e.g. the audit stream, which records denied calls), and so is
    each tenant's epoch: replica bookkeeping every sweeper writes once per Redis process
    (check_epoch.lua), in the background, not user state."""
    h = hashlib.sha256()
    skipped = (*skip, ":epoch")
    for key in sorted([k async for k in client.scan_iter("*", count=1000)]):
        if any(s in key for s in skipped):
            continue
        kind = await client.type(key)
        h.update(f"{key}\0{kind}\0{await _value(client, key, kind)}\0".encode())
    return h.hexdigest()


async def _value(client: redis.asyncio.Redis, key: str, kind: str) -> str:
    if kind == "string":
        return str(await client.get(key))
    if kind == "hash":
        return repr(sorted((await client.hgetall(key)).items()))
    if kind == "set":
        return repr(sorted(await client.smembers(key)))
    if kind == "zset":
        return repr(await client.zrange(key, 0, -1, withscores=True))
    if kind == "list":
        return repr(await client.lrange(key, 0, -1))
    if kind == "stream":
        return repr(await client.xrange(key))
    return kind
