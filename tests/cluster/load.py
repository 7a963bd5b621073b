"""A steady load through the real gRPC API for the cluster's disruption tests: a platform
submitting chat contacts, agents accepting and completing every offer, and a sampler
checking Redis as it goes. Every RPC is retried while the store says UNAVAILABLE (a
failover in progress) with the same request id or token, as a real client would.

The checks are the router's promises: no contact accepted by two agents, no agent's load
past its capacity, and every contact whose submission was answered ends completed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import redis.asyncio

from queues import keys
from router.auth import Role
from router.domain import AgentId, TenantId
from router.pb.omniroute.v1 import agent_service_pb2 as agent_pb
from router.pb.omniroute.v1 import resources_pb2 as pb
from tests.grpc.conftest import Api

T = TypeVar("T")
TENANT = TenantId("t1")
AGENTS = ("a1", "a2", "a3", "a4")
CHAT_CAPACITY = 2
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL)


async def retrying(call: Callable[[], Awaitable[T]], patience_s: float = 30.0) -> T:
    """`call` again while the service is failing over (UNAVAILABLE), up to `patience_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience_s
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in RETRYABLE or loop.time() > deadline:
                raise
        await asyncio.sleep(0.1)


@dataclass
class Load:
    """The running load; ``start``, disrupt, ``finish``, then read the ledger."""

    api: Api
    aredis: redis.asyncio.Redis
    submitted: set[str] = field(default_factory=set)
    accepted: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    completed: set[str] = field(default_factory=set)
    overruns: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _in_flight: int = 0
    _platform_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Rule, agents signed in with offer streams, then the platform and the sampler."""
        self.gate.set()
        await self.api.create_rule("billing", {"billing": 1})
        for agent in AGENTS:
            await self.api.create_agent(agent, {"billing": 3}, {pb.CHANNEL_CHAT: CHAT_CAPACITY})
            await self.api.sign_in(agent)
            self._tasks.append(asyncio.create_task(self._agent(agent)))
        self._platform_task = asyncio.create_task(self._platform())
        self._tasks.append(self._platform_task)
        self._tasks.append(asyncio.create_task(self._sampler()))

    async def pause(self) -> None:
        """Stop issuing RPCs and wait for those in flight (before a kill, so that every
        answered write has reached the replica)."""
        self.gate.clear()
        while self._in_flight:
            await asyncio.sleep(0.01)

    def resume(self) -> None:
        """Issue RPCs again."""
        self.gate.set()

    async def _rpc(self, call: Callable[[], Awaitable[T]]) -> T:
        await self.gate.wait()
        self._in_flight += 1
        try:
            return await retrying(call)
        finally:
            self._in_flight -= 1

    async def _platform(self) -> None:
        n = 0
        while True:
            n += 1
            request_id = f"load-{n}"
            contact = await self._rpc(
                lambda r=request_id: self.api.submit("billing", pb.CHANNEL_CHAT, request_id=r)  # type: ignore[misc]
            )
            self.submitted.add(contact.name)
            await asyncio.sleep(0.02)

    async def _agent(self, agent: str) -> None:
        while True:  # a stream broken by a failover is opened again
            stream = self.api.stream(agent)
            try:
                while True:
                    try:
                        offer = await stream.next_offer(wait_s=0.5)
                    except TimeoutError:
                        if stream.call.done():  # ended by the server: open it again
                            break
                        continue
                    self._tasks.append(asyncio.create_task(self._handle(agent, offer)))
            except (grpc.aio.AioRpcError, TimeoutError):
                await asyncio.sleep(0.1)
            finally:
                await stream.close()

    async def _handle(self, agent: str, offer: pb.Offer) -> None:
        md = self.api.md(Role.AGENT)
        try:
            await self._rpc(
                lambda: self.api.agents.AcceptOffer(
                    agent_pb.AcceptOfferRequest(name=offer.name, token=offer.token), metadata=md
                )
            )
        except grpc.aio.AioRpcError:
            return  # expired, or re-offered after a lost write: the router offers it again
        self.accepted[offer.contact.name].add(agent)
        await asyncio.sleep(0.05)
        await self._complete(offer, md)

    async def _complete(self, offer: pb.Offer, md: Any) -> None:
        await self._rpc(
            lambda: self.api.agents.CompleteContact(
                agent_pb.CompleteContactRequest(
                    name=offer.name, token=offer.token, outcome=pb.OUTCOME_RESOLVED
                ),
                metadata=md,
            )
        )
        self.completed.add(offer.contact.name)

    async def _sampler(self) -> None:
        while True:
            for agent in AGENTS:
                with contextlib.suppress(redis.RedisError):
                    load = await self.aredis.hgetall(keys.agent_load(TENANT, AgentId(agent)))
                    chat = int(load.get("chat", 0))
                    if chat > CHAT_CAPACITY:
                        self.overruns.append(f"{agent}: {chat} chats in hand")
            await asyncio.sleep(0.05)

    async def finish(self, drain_s: float = 20.0) -> None:
        """Stop submitting, wait until every submitted contact is completed, stop."""
        assert self._platform_task is not None, "start() first"
        self._platform_task.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_s
        while not self.submitted <= self.completed and loop.time() < deadline:
            await asyncio.sleep(0.1)
        for task in self._tasks:
            task.cancel()
        for outcome in await asyncio.gather(*self._tasks, return_exceptions=True):
            if isinstance(outcome, Exception):
                self.errors.append(repr(outcome))

    async def check(self, minimum: int = 20) -> None:
        """The promises: enough traffic, one agent per contact, no overrun, none lost."""
        assert len(self.submitted) >= minimum, f"only {len(self.submitted)} contacts"
        doubles = {c: a for c, a in self.accepted.items() if len(a) > 1}
        assert not doubles, f"contacts accepted by two agents: {doubles}"
        assert not self.overruns, self.overruns
        assert not self.errors, self.errors[:5]
        lost = self.submitted - self.completed
        states = {}
        for name in sorted(lost)[:5]:
            cid = name.rsplit("/", 1)[-1]
            states[name] = await self.aredis.hgetall(keys.contact(TENANT, cid))  # type: ignore[arg-type]
        assert not lost, f"{len(lost)} contacts never completed, e.g. {json.dumps(states)}"
