"""Each Lua script on its own, through RedisState, against a real Redis."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio

from queues import keys
from queues.state import RedisState
from router.domain import AgentId, Channel, ContactId, CustomerId
from tests.redis.conftest import (
    DAY,
    T,
    create_agent,
    enqueue,
    load,
    reservation,
    reserve,
    wait_past,
)

C1, C2, C3 = ContactId("c1"), ContactId("c2"), ContactId("c3")
A1, A2 = AgentId("a1"), AgentId("a2")
CU = CustomerId("cu1")


# --- enqueue ----------------------------------------------------------------------------


async def test_enqueue_queues_a_contact_once(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    first = await enqueue(state, "c1")
    assert first.code == 1 and first.values[0] == "c1"
    again = await enqueue(state, "c1")
    assert (again.code, again.values) == (0, ("c1",))
    assert await aredis.zrange(keys.queue(T), 0, -1) == ["c1"]
    assert (await state.read_contact(T, C1))["status"] == "queued"


async def test_enqueue_with_the_same_request_id_returns_the_first_contact(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    assert (await enqueue(state, "c1", request_id="r1", digest="same")).code == 1
    again = await enqueue(state, "c2", request_id="r1", digest="same")
    assert (again.code, again.values) == (0, ("c1",))
    assert await aredis.exists(keys.contact(T, C2)) == 0
    assert await aredis.zrange(keys.queue(T), 0, -1) == ["c1"]


async def test_enqueue_with_a_reused_request_id_and_another_payload_is_refused(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    assert (await enqueue(state, "c1", request_id="r1", digest="one")).code == 1
    refused = await enqueue(state, "c2", request_id="r1", digest="two")
    assert refused.code == -1
    assert await aredis.exists(keys.contact(T, C2)) == 0
    assert await aredis.zcard(keys.queue(T)) == 1


async def test_queue_order_is_priority_then_nearest_to_target(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    await enqueue(state, "email", target_ms=4 * 3600_000)
    await enqueue(state, "voice", target_ms=20_000)
    await enqueue(state, "urgent", target_ms=4 * 3600_000, priority=9)
    assert await aredis.zrange(keys.queue(T), 0, -1) == ["urgent", "voice", "email"]


# --- reserve_offer ----------------------------------------------------------------------


async def test_reserve_offer_answers_1_0_minus1_minus2(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    await create_agent(state, "a1", {Channel.CHAT: 1})
    await create_agent(state, "a2", {Channel.CHAT: 1}, available=False)
    for cid in ("c1", "c2", "c3"):
        await enqueue(state, cid)
    reserved = await reserve(state, "c1", "a1")
    assert reserved.code == 1
    assert reserved.values[0] == 1  # token
    assert (await reserve(state, "c1", "a1")).code == 0  # no longer queued
    full = await reserve(state, "c2", "a1")
    assert (full.code, full.values) == (-1, (1,))
    assert (await reserve(state, "c2", "a2")).code == -2  # not available
    await state.set_state(T, A2, "available", "", "test", sign_in=True)
    stale = await reserve(state, "c2", "a2", version=0)
    assert (stale.code, stale.values) == (-2, (1,))
    assert (await reserve(state, "c2", "a2", version=1)).code == 1
    assert await load(aredis, "a1") == {"chat": 1}
    assert await aredis.zrange(keys.queue(T), 0, -1) == ["c3"]
    assert set(await aredis.zrange(keys.offers(T), 0, -1)) == {"c1", "c2"}
    assert await aredis.hgetall(keys.agent_contacts(T, A1)) == {"c1": "1"}


async def test_reserve_offer_with_the_same_nonce_twice_returns_the_first_answer(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    await create_agent(state, "a1", {Channel.CHAT: 2})
    await enqueue(state, "c1")
    first = await reserve(state, "c1", "a1", nonce="n1")
    again = await reserve(state, "c1", "a1", nonce="n1")
    assert first == again
    assert await load(aredis, "a1") == {"chat": 1}
    assert (await state.read_contact(T, C1))["token"] == "1"


async def test_reserve_offer_refuses_a_channel_the_agent_has_no_capacity_for(
    state: RedisState,
) -> None:
    await create_agent(state, "a1", {Channel.CHAT: 1})
    await enqueue(state, "c1", channel=Channel.VOICE)
    result = await reserve(state, "c1", "a1", channel=Channel.VOICE)
    assert result.code == -1


# --- accept_offer -----------------------------------------------------------------------


async def offered(state: RedisState, timeout_ms: int = 30_000) -> int:
    await create_agent(state, "a1", {Channel.CHAT: 1})
    await create_agent(state, "a2", {Channel.CHAT: 1})
    await enqueue(state, "c1", customer="cu1")
    result = await reserve(state, "c1", "a1", timeout_ms=timeout_ms)
    assert result.code == 1
    return int(result.values[0])


async def test_accept_assigns_and_a_repeat_gets_the_same_answer(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    token = await offered(state)
    first = await state.accept(T, C1, A1, token, DAY)
    assert first.code == 1
    again = await state.accept(T, C1, A1, token, DAY)
    assert again == first
    assert (await state.read_contact(T, C1))["status"] == "assigned"
    assert await aredis.zcard(keys.offers(T)) == 0
    answered = await aredis.hgetall(keys.stats(T, DAY))
    assert answered["billing:chat:answered"] == "1"


async def test_accept_with_a_stale_token_or_by_another_agent_is_minus3(state: RedisState) -> None:
    token = await offered(state)
    assert (await state.accept(T, C1, A1, token + 1, DAY)).code == -3
    assert (await state.accept(T, C1, A2, token, DAY)).code == -3
    assert (await state.accept(T, ContactId("nope"), A1, token, DAY)).code == -4
    assert (await state.read_contact(T, C1))["status"] == "offered"


async def test_accept_after_the_deadline_is_minus5_and_changes_nothing(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    token = await offered(state, timeout_ms=50)
    await wait_past(state, int((await state.read_contact(T, C1))["deadline_ms"]))
    assert (await state.accept(T, C1, A1, token, DAY)).code == -5
    assert (await state.read_contact(T, C1))["status"] == "offered"
    assert await aredis.exists(keys.stats(T, DAY)) == 0


# --- release_offer ----------------------------------------------------------------------


async def test_declined_contact_returns_at_its_old_score_ahead_of_newer_contacts(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    token = await offered(state)
    score = float((await state.read_contact(T, C1))["qscore"])
    await enqueue(state, "c2")
    released = await state.release(T, C1, A1, token, "billing", Channel.CHAT, "declined", 3)
    assert released.code == 1
    assert await aredis.zrange(keys.queue(T), 0, -1, withscores=True) == [
        ("c1", score),
        ("c2", float((await state.read_contact(T, C2))["qscore"])),
    ]
    fields = await state.read_contact(T, C1)
    assert (fields["status"], fields["declined"]) == ("queued", "a1")
    assert await load(aredis, "a1") == {"chat": 0}
    assert await aredis.hlen(keys.agent_contacts(T, A1)) == 0
    again = await state.release(T, C1, A1, token, "billing", Channel.CHAT, "declined", 3)
    assert again.code == 1
    assert await load(aredis, "a1") == {"chat": 0}


async def test_expiry_before_the_deadline_is_refused(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    token = await offered(state)
    result = await state.release(T, C1, A1, token, "billing", Channel.CHAT, "expired", 3)
    assert result.code == -6
    assert (await state.read_contact(T, C1))["status"] == "offered"
    assert await load(aredis, "a1") == {"chat": 1}


async def test_expiry_after_the_deadline_requeues_and_counts_the_miss(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    token = await offered(state, timeout_ms=50)
    deadline = int((await state.read_contact(T, C1))["deadline_ms"])
    assert await state.due_offers(T) in ([], ["c1"])
    await wait_past(state, deadline)
    assert await state.due_offers(T) == ["c1"]
    result = await state.release(T, C1, A1, token, "billing", Channel.CHAT, "expired", 3)
    assert (result.code, result.values) == (1, (1,))
    assert (await state.read_contact(T, C1))["status"] == "queued"
    assert await aredis.hget(keys.agent(T, A1), "missed") == "1"


async def test_n_expiries_in_a_row_set_the_agent_away_with_reason_no_answer(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    await create_agent(state, "a1", {Channel.CHAT: 1})
    await enqueue(state, "c1")
    for n in (1, 2, 3):
        reserved = await reserve(state, "c1", "a1", timeout_ms=20)
        assert reserved.code == 1, n
        token, deadline = int(reserved.values[0]), int(reserved.values[1])
        await wait_past(state, deadline)
        result = await state.release(T, C1, A1, token, "billing", Channel.CHAT, "expired", 3)
        assert result.values == (n,)
    agent = await aredis.hgetall(keys.agent(T, A1))
    assert (agent["state"], agent["away_reason"]) == ("away", "no_answer")
    assert not await aredis.sismember(keys.available(T), "a1")
    (_, event), *_ = await state.read_audit(T, 1, None)
    assert (event["action"], event["after"]) == ("SetAgentState", "away:no_answer")
    assert (await reserve(state, "c1", "a1")).code == -2


async def test_an_accept_resets_the_missed_count(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    await create_agent(state, "a1", {Channel.CHAT: 1})
    await enqueue(state, "c1")
    reserved = await reserve(state, "c1", "a1", timeout_ms=20)
    await wait_past(state, int(reserved.values[1]))
    await state.release(T, C1, A1, int(reserved.values[0]), "billing", Channel.CHAT, "expired", 2)
    reserved = await reserve(state, "c1", "a1")
    assert (await state.accept(T, C1, A1, int(reserved.values[0]), DAY)).ok
    assert await aredis.hget(keys.agent(T, A1), "missed") == "0"


# --- complete ---------------------------------------------------------------------------


async def test_complete_frees_the_slot_and_appends_bounded_history(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    await create_agent(state, "a1", {Channel.CHAT: 1})
    for i in range(5):
        cid = ContactId(f"c{i}")
        await enqueue(state, cid, customer="cu1")
        token = int((await reserve(state, cid, "a1")).values[0])
        assert (await state.accept(T, cid, A1, token, DAY)).ok
        assert (await reserve(state, "other", "a1")).code in (0, -1)
        entry = {"contact": cid, "channel": "chat", "issue": "billing", "agent": "a1"}
        done = await state.complete(T, cid, A1, token, "resolved", f"note {i}", entry, CU, DAY)
        assert done.ok
        assert await load(aredis, "a1") == {"chat": 0}
        again = await state.complete(T, cid, A1, token, "resolved", "x", entry, CU, DAY)
        assert again.ok
    raw = await aredis.lrange(keys.history(T, CU), 0, -1)
    assert [json.loads(r)["contact"] for r in raw] == ["c4", "c3", "c2"]  # newest first, 3 kept
    assert all("time_ms" in json.loads(r) for r in raw)
    fields = await state.read_contact(T, ContactId("c4"))
    assert (fields["status"], fields["outcome"], fields["note"]) == (
        "completed",
        "resolved",
        "note 4",
    )


async def test_complete_before_accept_is_minus3(state: RedisState) -> None:
    token = await offered(state)
    result = await state.complete(T, C1, A1, token, "resolved", "", {}, CU, DAY)
    assert (result.code, result.values) == (-3, ("offered",))


# --- abandon ----------------------------------------------------------------------------


async def test_abandon_from_the_queue_removes_it_and_records_history(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    await enqueue(state, "c1", customer="cu1")
    entry = {"contact": "c1", "channel": "chat", "issue": "billing", "status": "abandoned"}
    result = await state.abandon(T, C1, None, "hung_up", entry, CU, "billing", Channel.CHAT, DAY)
    assert result.ok
    assert await aredis.zcard(keys.queue(T)) == 0
    assert await aredis.zcard(keys.view(T, "billing", Channel.CHAT)) == 0
    assert (await state.read_contact(T, C1))["status"] == "abandoned"
    assert len(await aredis.lrange(keys.history(T, CU), 0, -1)) == 1
    again = await state.abandon(T, C1, None, "hung_up", entry, CU, "billing", Channel.CHAT, DAY)
    assert again.ok
    assert len(await aredis.lrange(keys.history(T, CU), 0, -1)) == 1


async def test_abandon_from_an_offer_frees_the_agents_slot(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    await offered(state)
    wrong = await state.abandon(T, C1, A2, "x", {}, None, "billing", Channel.CHAT, DAY)
    assert (wrong.code, wrong.values) == (-7, ("a1",))
    result = await state.abandon(T, C1, A1, "hung_up", {}, None, "billing", Channel.CHAT, DAY)
    assert result.ok
    assert await load(aredis, "a1") == {"chat": 0}
    assert await aredis.zcard(keys.offers(T)) == 0
    assert await aredis.hlen(keys.agent_contacts(T, A1)) == 0


async def test_abandon_of_an_assigned_contact_is_refused(state: RedisState) -> None:
    token = await offered(state)
    await state.accept(T, C1, A1, token, DAY)
    result = await state.abandon(T, C1, A1, "x", {}, None, "billing", Channel.CHAT, DAY)
    assert (result.code, result.values) == (-3, ("assigned",))


# --- agents, state, heartbeat, rules ----------------------------------------------------------


async def test_write_agent_creates_updates_with_cas_and_deletes(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    profile = {"display_name": "A", "kind": "human", "skills": {"x": 1}, "capacity": {"chat": 1}}
    created = await state.write_agent(T, A1, "create", profile, None, "s", "CreateAgent", "a1")
    assert (created.code, created.values) == (1, (1,))
    dup = await state.write_agent(T, A1, "create", profile, None, "s", "CreateAgent", "a1")
    assert dup.code == -1
    changed = {**profile, "skills": {"x": 4}}
    updated = await state.write_agent(T, A1, "update", changed, 1, "s", "UpdateAgent", "a1")
    assert (updated.code, updated.values) == (1, (2,))
    stale = await state.write_agent(T, A1, "update", profile, 1, "s", "UpdateAgent", "a1")
    assert (stale.code, stale.values) == (-8, (2,))
    assert json.loads(await aredis.hget(keys.agent(T, A1), "skills") or "") == {"x": 4}
    await state.set_state(T, A1, "available", "", "s", sign_in=True)
    busy = await state.write_agent(T, A1, "delete", None, None, "s", "DeleteAgent", "a1")
    assert busy.code == -3
    await state.set_state(T, A1, "signed_out", "", "s")
    deleted = await state.write_agent(T, A1, "delete", None, None, "s", "DeleteAgent", "a1")
    assert deleted.ok
    assert await aredis.exists(keys.agent(T, A1)) == 0
    assert not await aredis.sismember(keys.agents(T), "a1")
    missing = await state.write_agent(T, A1, "update", profile, None, "s", "UpdateAgent", "a1")
    assert missing.code == -4
    audit = [f["action"] for _, f in reversed(await state.read_audit(T, 10, None))]
    assert audit.count("UpdateAgent") == 1
    assert audit[-1] == "DeleteAgent"


async def test_set_state_moves_the_agent_in_and_out_of_available(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    await create_agent(state, "a1", available=False)
    assert (await state.set_state(T, A1, "available", "", "s", sign_in=True)).values == (
        "signed_out",
    )
    assert await aredis.sismember(keys.available(T), "a1")
    assert await aredis.zscore(keys.presence(T), "a1") is not None
    await state.set_state(T, A1, "away", "lunch", "s")
    assert not await aredis.sismember(keys.available(T), "a1")
    assert await aredis.hget(keys.agent(T, A1), "away_reason") == "lunch"
    assert (await state.set_state(T, AgentId("ghost"), "away", "x", "s")).code == -4
    await enqueue(state, "c1")
    await state.set_state(T, A1, "available", "", "s")
    await reserve(state, "c1", "a1")
    holding = await state.set_state(T, A1, "signed_out", "", "s")
    assert (holding.code, holding.values) == (-3, (1,))


async def test_heartbeat_renews_only_a_signed_in_agent(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    await create_agent(state, "a1", available=False)
    assert (await state.heartbeat(T, A1)).code == 0
    assert await aredis.zscore(keys.presence(T), "a1") is None
    await state.set_state(T, A1, "available", "", "s", sign_in=True)
    before = await aredis.zscore(keys.presence(T), "a1")
    await asyncio.sleep(0.002)
    assert (await state.heartbeat(T, A1)).values == ("available",)
    assert (await aredis.zscore(keys.presence(T), "a1") or 0) >= (before or 0)
    assert (await state.heartbeat(T, AgentId("ghost"))).code == -4


async def test_write_rule_creates_replaces_and_deletes_with_audit(state: RedisState) -> None:
    assert (await state.write_rule(T, "billing", "create", '{"v":1}', "s", "Create", "r")).ok
    assert (
        await state.write_rule(T, "billing", "create", '{"v":2}', "s", "Create", "r")
    ).code == -1
    replaced = await state.write_rule(T, "billing", "update", '{"v":2}', "s", "Update", "r")
    assert replaced.values == ('{"v":1}',)
    assert await state.read_rules(T) == {"billing": '{"v":2}'}
    assert (await state.write_rule(T, "tv", "update", "{}", "s", "Update", "r")).code == -4
    assert (await state.write_rule(T, "billing", "delete", "", "s", "Delete", "r")).ok
    assert await state.read_rules(T) == {}
    events = [(f["before"], f["after"]) for _, f in reversed(await state.read_audit(T, 10, None))]
    assert events == [("", '{"v":1}'), ('{"v":1}', '{"v":2}'), ('{"v":2}', "")]


async def test_resolve_customer_refuses_when_an_identity_changed_since_read(
    state: RedisState,
) -> None:
    ids = [("phone", "+1"), ("email", "a@b")]
    assert (await state.resolve_customer(T, CustomerId("cu1"), ids, ["", ""])).ok
    assert await state.identity_owners(T, ids) == ["cu1", "cu1"]
    late = await state.resolve_customer(T, CustomerId("cu2"), ids, ["", ""])
    assert late.code == -9
    assert await state.identity_owners(T, ids) == ["cu1", "cu1"]


async def test_concurrent_identities_resolve_to_one_customer(state: RedisState) -> None:
    """Many first contacts of one person at once: every one ends with the same customer."""
    ids = [("phone", "+15550001")]

    async def resolve(n: int) -> str:
        for _ in range(50):
            owners = await state.identity_owners(T, ids)
            customer = CustomerId(owners[0] or f"cu{n}")
            result = await state.resolve_customer(T, customer, ids, owners)
            if result.ok:
                return str(result.values[0])
        raise AssertionError("never resolved")

    winners = await asyncio.gather(*(resolve(n) for n in range(20)))
    assert len(set(winners)) == 1
    assert await state.identity_owners(T, ids) == [winners[0]]


async def test_reservations_in_one_pipeline_commit_or_refuse_each_on_its_own(
    state: RedisState,
) -> None:
    await create_agent(state, "a1", {Channel.CHAT: 1})
    await enqueue(state, "c1")
    await enqueue(state, "c2")
    results = await state.reserve(T, [reservation("c1", "a1"), reservation("c2", "a1")], 30_000)
    assert [r.code for r in results] == [1, -1]
