"""Two RedisState clients (two replicas) racing: one contact goes to exactly one agent,
and an agent's last slot goes to exactly one contact."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from queues import keys
from queues.state import RedisState
from router.domain import AgentId, Channel
from tests.redis.conftest import T, create_agent, enqueue, load, reservation


@pytest.fixture
async def replicas(redis_url: str, aredis: redis.asyncio.Redis) -> AsyncIterator[list[RedisState]]:
    """Two RedisState instances on two connection pools, like two replicas."""
    clients = [redis.asyncio.Redis.from_url(redis_url, decode_responses=True) for _ in range(2)]
    yield [RedisState(c) for c in clients]
    for c in clients:
        await c.aclose()


async def test_many_replicas_racing_for_one_contact_give_it_to_exactly_one_agent(
    replicas: list[RedisState], aredis: redis.asyncio.Redis
) -> None:
    agents = [f"a{i}" for i in range(20)]
    for agent in agents:
        await create_agent(replicas[0], agent, {Channel.CHAT: 1})
    for round_ in range(10):
        cid = f"c{round_}"
        await enqueue(replicas[0], cid)
        attempts = [
            replicas[i % 2].reserve(T, [reservation(cid, agent)], 30_000)
            for i, agent in enumerate(agents)
        ]
        results = [r for (r,) in await asyncio.gather(*attempts)]
        winners = [agent for agent, r in zip(agents, results, strict=True) if r.code == 1]
        assert len(winners) == 1, results
        assert {r.code for r in results} <= {1, 0}
        fields = await aredis.hgetall(keys.contact(T, cid))  # type: ignore[arg-type]
        assert (fields["status"], fields["agent"], fields["token"]) == ("offered", winners[0], "1")
        # Free the winner for the next round so every agent stays in the race.
        await aredis.hset(keys.agent_load(T, AgentId(winners[0])), "chat", 0)
    total = 0
    for agent in agents:
        total += await aredis.hlen(keys.agent_contacts(T, AgentId(agent)))
    assert total == 10


async def test_racing_for_the_last_slot_never_loads_an_agent_past_capacity(
    replicas: list[RedisState], aredis: redis.asyncio.Redis
) -> None:
    await create_agent(replicas[0], "a1", {Channel.CHAT: 3, Channel.VOICE: 1})
    contacts = [f"c{i}" for i in range(30)]
    for cid in contacts:
        await enqueue(replicas[0], cid, channel=Channel.CHAT)
    for cid in ("v1", "v2", "v3"):
        await enqueue(replicas[1], cid, channel=Channel.VOICE)
    attempts = [
        replicas[i % 2].reserve(T, [reservation(cid, "a1")], 30_000)
        for i, cid in enumerate(contacts)
    ] + [
        replicas[i % 2].reserve(T, [reservation(cid, "a1", channel=Channel.VOICE)], 30_000)
        for i, cid in enumerate(("v1", "v2", "v3"))
    ]
    results = [r for (r,) in await asyncio.gather(*attempts)]
    assert sum(r.code == 1 for r in results[:30]) == 3
    assert sum(r.code == 1 for r in results[30:]) == 1
    assert {r.code for r in results} == {1, -1}
    assert await load(aredis, "a1") == {"chat": 3, "voice": 1}
    assert await aredis.hlen(keys.agent_contacts(T, AgentId("a1"))) == 4
    assert await aredis.zcard(keys.queue(T)) == 33 - 4
    assert await aredis.zcard(keys.offers(T)) == 4


async def test_accept_and_expiry_racing_settle_on_one_outcome(
    replicas: list[RedisState], aredis: redis.asyncio.Redis
) -> None:
    """An agent accepting just as a replica expires the offer: either it is assigned, or
    it is back in the queue with the slot freed; never both. The agent's load always
    equals the contacts it holds."""
    await create_agent(replicas[0], "a1", {Channel.CHAT: 50})
    outcomes = set()
    for n in range(20):
        cid = f"c{n}"
        await enqueue(replicas[0], cid)
        (reserved,) = await replicas[0].reserve(T, [reservation(cid, "a1")], 5)
        assert reserved.code == 1
        token, deadline = int(reserved.values[0]), int(reserved.values[1])
        while await replicas[0].now_ms() <= deadline - 2:
            await asyncio.sleep(0.001)
        accept, expire = await asyncio.gather(
            replicas[0].accept(T, cid, AgentId("a1"), token, "20260101"),  # type: ignore[arg-type]
            replicas[1].release(
                T,
                cid,
                AgentId("a1"),
                token,
                "billing",
                Channel.CHAT,
                "expired",
                0,  # type: ignore[arg-type]
            ),
        )
        status = (await aredis.hgetall(keys.contact(T, cid)))["status"]  # type: ignore[arg-type]
        assert not (accept.ok and expire.ok)
        if accept.ok:
            assert status == "assigned"
        elif expire.ok:
            assert status == "queued"
        else:  # expiry ran just before the deadline, the accept just after: still offered
            assert status == "offered"
        outcomes.add(status)
        held = await aredis.hlen(keys.agent_contacts(T, AgentId("a1")))
        assigned = sum(
            [
                (await aredis.hget(keys.contact(T, f"c{i}"), "status")) in ("assigned", "offered")  # type: ignore[arg-type]
                for i in range(n + 1)
            ]
        )
        assert held == assigned
        assert (await load(aredis, "a1")).get("chat", 0) == held
