"""After Redis restarts, fails over or loses its last writes, routing pauses, reconciles and
never offers a contact that may already be assigned to a second agent.

The rollback is made by hand: every key of the tenant is dumped before the accept and
restored after it (what restarting Redis from a copy taken a moment earlier does to the
tenant), and the epoch's noted run id is set to another process's, which is what a real
restart changes (the chaos run's ``--data-loss`` does the real thing)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import redis.asyncio

from queues import keys
from router.auth import Role
from router.domain import TenantId
from router.pb.omniroute.v1 import agent_service_pb2 as agent_pb
from router.pb.omniroute.v1 import resources_pb2 as pb
from tests.grpc.conftest import ApiFactory
from tests.grpc.test_end_to_end import accept, complete

T = TenantId("t1")


async def dump_tenant(client: redis.asyncio.Redis) -> dict[str, bytes]:
    raw = redis.asyncio.Redis(connection_pool=client.connection_pool, decode_responses=False)
    found = {}
    async for key in client.scan_iter("omr:{t1}:*"):
        value = await raw.dump(key)
        if value is not None:
            found[key] = value
    return found


async def roll_back(client: redis.asyncio.Redis, copy: dict[str, bytes]) -> None:
    """The tenant as it was when `copy` was taken; Redis 'restarted' (another run id)."""
    async for key in client.scan_iter("omr:{t1}:*"):
        if key not in copy and not key.endswith(":audit"):
            await client.delete(key)
    raw = redis.asyncio.Redis(connection_pool=client.connection_pool, decode_responses=False)
    for key, value in copy.items():
        await raw.restore(key, 0, value, replace=True)
    await client.hset(keys.epoch(T), "boot", "a-process-before-the-restart")


async def test_a_lost_accept_is_reasserted_and_never_offered_to_another_agent(
    make_api: ApiFactory, aredis: redis.asyncio.Redis
) -> None:
    api = await make_api(recovery_hold_s=2.0)
    engine = api.service.engine
    await api.create_rule("billing", {"billing": 1})
    await api.create_agent("a1", {"billing": 5})
    await api.sign_in("a1")
    s1 = api.stream("a1")
    s2 = None
    try:
        contact = await api.submit("billing", pb.CHANNEL_VOICE)
        offer = await s1.next_offer()
        # The copy Redis will restart from: the contact offered to a1, not yet accepted.
        copy = await dump_tenant(aredis)
        await accept(api, offer)
        await roll_back(aredis, copy)
        engine._run_ids.clear()  # as after a reconnect: the next sweep reads the run id
        await api.create_agent("a2", {"billing": 5})
        await api.sign_in("a2")
        s2 = api.stream("a2")
        for _ in range(100):
            if (await aredis.hget(keys.epoch(T), "until")) is not None:
                break
            await asyncio.sleep(0.05)
        epoch = await aredis.hgetall(keys.epoch(T))
        assert int(epoch["restarts"]) == 1 and int(epoch["floor"]) > 10**12
        # a1's open stream tells its desktop to re-assert what it holds.
        while (event := await s1.next(wait_s=5.0)).WhichOneof("event") != "reconciling":
            pass
        assert event.reconciling.until.ToMilliseconds() == int(epoch["until"])
        # Routing is paused: a2 (free, skilled) gets no offer during the hold.
        with pytest.raises(TimeoutError):
            await s2.next_offer(wait_s=1.0)
        # a1's desktop still holds the contact: its complete re-asserts, then completes.
        done = await complete(api, offer)
        assert done.state == pb.CONTACT_STATE_COMPLETED
        assert (await api.get_contact(contact.name)).state == pb.CONTACT_STATE_COMPLETED
        # After the hold, routing resumes and new offers carry tokens above the floor.
        await api.submit("billing", pb.CHANNEL_VOICE)
        fresh = await s2.next_offer(wait_s=10.0)
        assert fresh.token > int(epoch["floor"])
        assert fresh.contact.name != contact.name
    finally:
        await s1.close()
        if s2 is not None:
            await s2.close()


async def test_a_lost_accept_of_a_waiting_contact_is_reasserted_by_its_holder_only(
    make_api: ApiFactory, aredis: redis.asyncio.Redis
) -> None:
    """The copy has the contact waiting after a1 declined a first offer; the lost writes
    held a second offer to a1 and its accept. During the reconciliation a1's accept (its
    token from before) assigns it back; another agent with a guessed token gets nothing."""
    api = await make_api(recovery_hold_s=3.0)
    await api.create_rule("billing", {"billing": 1})
    await api.create_agent("a1", {"billing": 5})
    await api.create_agent("a3", {"billing": 5})
    contact = await api.submit("billing", pb.CHANNEL_CHAT)
    await api.sign_in("a1")
    s1 = api.stream("a1")
    try:
        first = await s1.next_offer()
        await aredis.srem(keys.available(T), "a1")  # hold a1's next offer for a moment
        await api.agents.DeclineOffer(
            agent_pb.DeclineOfferRequest(name=first.name, token=first.token),
            metadata=api.md(Role.AGENT),
        )
        copy = await dump_tenant(aredis)  # waiting again, last offered to a1
        await aredis.sadd(keys.available(T), "a1")
        api.service.engine.router(T).agent_changed("a1")  # type: ignore[arg-type]
        offer = await s1.next_offer()
        assert offer.token == first.token + 1
        await accept(api, offer)
        await roll_back(aredis, copy)
        api.service.engine._run_ids.clear()
        for _ in range(100):
            if (await aredis.hget(keys.epoch(T), "until")) is not None:
                break
            await asyncio.sleep(0.05)
        assert (await api.get_contact(contact.name)).state == pb.CONTACT_STATE_QUEUED
        await api.sign_in("a3")
        stranger = offer.name.replace("/agents/a1/", "/agents/a3/")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await api.agents.AcceptOffer(
                agent_pb.AcceptOfferRequest(name=stranger, token=offer.token + 5),
                metadata=api.md(Role.AGENT),
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert (await api.get_contact(contact.name)).state == pb.CONTACT_STATE_QUEUED
        back = await accept(api, offer)
        assert back.state == pb.CONTACT_STATE_ASSIGNED
        load = await aredis.hgetall(keys.agent_load(T, "a1"))  # type: ignore[arg-type]
        assert load.get("chat") == "1"
        cid = contact.name.rsplit("/", 1)[1]
        assert await aredis.zscore(keys.queue(T), cid) is None
        assert await aredis.hget(keys.agent_contacts(T, "a1"), cid) == str(offer.token)  # type: ignore[arg-type]
        await complete(api, offer)
    finally:
        await s1.close()


async def test_without_a_reconciliation_an_old_token_changes_nothing(
    make_api: ApiFactory, aredis: redis.asyncio.Redis
) -> None:
    """The re-assert path exists only during a reconciliation: a late accept after the
    offer expired stays refused, state unchanged."""
    api = await make_api(offer_timeout_s=0.3, max_missed_offers=0)
    await api.create_rule("billing", {"billing": 1})
    await api.create_agent("a1", {"billing": 5})
    contact = await api.submit("billing", pb.CHANNEL_CHAT)
    await api.sign_in("a1")
    s1 = api.stream("a1")
    try:
        offer = await s1.next_offer()
        await api.agents.SetAgentState(
            agent_pb.SetAgentStateRequest(
                name=offer.name.split("/offers/")[0], state=pb.AGENT_STATE_AWAY, away_reason="break"
            ),
            metadata=api.md(Role.AGENT),
        )
        for _ in range(100):
            if (await api.get_contact(contact.name)).state == pb.CONTACT_STATE_QUEUED:
                break
            await asyncio.sleep(0.05)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await accept(api, offer)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert (await api.get_contact(contact.name)).state == pb.CONTACT_STATE_QUEUED
    finally:
        await s1.close()
