"""The bot and callback scripts on their own, through RedisState, against a real Redis:
escalate, request_callback, callback_due, and what complete, accept_offer and reserve_offer
do for bots. Every script answers the same and changes nothing more when run twice."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio

from queues import keys
from queues.records import agent_profile, contact_fields
from queues.state import RedisState, ScriptResult
from router.domain import (
    AgentId,
    AgentKind,
    Channel,
    Contact,
    ContactId,
    CustomerId,
)
from tests.redis.conftest import DAY, T, create_agent, enqueue, load, reserve, wait_past

C1, C2 = ContactId("c1"), ContactId("c2")
BOT, A1 = AgentId("bot"), AgentId("a1")
CU = CustomerId("cu1")
LANE = 10**15


async def everything(aredis: redis.asyncio.Redis) -> dict[str, object]:
    """Every key of the test Redis with its value (test use only: it scans)."""
    out: dict[str, object] = {}
    async for key in aredis.scan_iter("*"):
        kind = await aredis.type(key)
        if kind == "hash":
            out[key] = await aredis.hgetall(key)
        elif kind == "zset":
            out[key] = await aredis.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            out[key] = await aredis.lrange(key, 0, -1)
        elif kind == "set":
            out[key] = sorted(await aredis.smembers(key))
        elif kind == "string":
            out[key] = await aredis.get(key)
        else:
            out[key] = kind
    return out


async def create_bot(state: RedisState, capacity: dict[Channel, int] | None = None) -> None:
    profile = agent_profile("Bot", AgentKind.BOT, {"billing": 2}, capacity or {Channel.CHAT: 1})
    assert (await state.write_agent(T, BOT, "create", profile, None, "t", "CreateAgent", "b")).ok
    assert (await state.set_state(T, BOT, "available", "", "t", sign_in=True)).ok


async def enqueue_for_bot(
    state: RedisState, contact_id: str, *, channel: Channel = Channel.CHAT, customer: str = "cu1"
) -> ScriptResult:
    contact = Contact(ContactId(contact_id), channel, "billing", 0.0, bot_first=True)
    fields = contact_fields(contact, ())
    fields["cust"] = customer
    return await state.enqueue(
        T, ContactId(contact_id), fields, "billing", channel, 0, 60_000, "", "d"
    )


async def held_by_bot(state: RedisState, contact_id: str = "c1") -> int:
    """Queue a contact for a bot, offer it to the bot and accept: the bot's token."""
    await enqueue_for_bot(state, contact_id)
    reserved = await reserve(state, contact_id, "bot")
    assert reserved.code == 1, reserved
    token = int(reserved.values[0])
    assert (await state.accept(T, ContactId(contact_id), BOT, token, DAY)).ok
    return token


async def escalate(state: RedisState, token: int, contact_id: str = "c1") -> ScriptResult:
    entry = {"contact": contact_id, "agent": "bot", "outcome": "transferred", "note": "sum"}
    return await state.escalate(
        T, ContactId(contact_id), BOT, token, "sum", entry, CU, "billing", Channel.CHAT, DAY
    )


def fields_of(result: ScriptResult) -> dict[str, str]:
    flat = list(result.values[0])
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}


# --- bots in reserve_offer, accept_offer and complete -----------------------------------


async def test_a_contact_for_a_bot_waits_in_front_of_the_queue(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    await enqueue(state, "person", priority=9)
    await enqueue_for_bot(state, "c1")
    assert await aredis.zrange(keys.queue(T), 0, -1) == ["c1", "person"]
    fields = await state.read_contact(T, C1)
    arrived, target = int(fields["arrived_ms"]), int(fields["target_ms"])
    assert int(fields["qscore"]) == 9 * 10**13 + arrived + target - LANE


async def test_a_bot_has_no_capacity_limit_and_takes_only_contacts_for_a_bot(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    await create_bot(state, {Channel.CHAT: 1})
    for cid in ("c1", "c2", "c3"):
        await enqueue_for_bot(state, cid)
        assert (await reserve(state, cid, "bot")).code == 1
    assert await load(aredis, "bot") == {"chat": 3}
    await enqueue(state, "person")
    assert (await reserve(state, "person", "bot")).code == -2  # not for a bot
    await enqueue_for_bot(state, "voice", channel=Channel.VOICE)
    assert (await reserve(state, "voice", "bot", channel=Channel.VOICE)).code == -1  # no voice


async def test_a_bot_answer_is_not_counted_and_its_completion_counts_containment(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    await create_bot(state)
    token = await held_by_bot(state)
    stats = await aredis.hgetall(keys.stats(T, DAY))
    assert "billing:chat:answered" not in stats
    entry = {"contact": "c1", "agent": "bot", "outcome": "resolved", "note": ""}
    done = await state.complete(T, C1, BOT, token, "resolved", "", entry, CU, DAY, 4)
    assert done.ok and fields_of(done)["csat"] == "4"
    stats = await aredis.hgetall(keys.stats(T, DAY))
    assert stats["billing:chat:bot_handled"] == "1" and stats["billing:chat:bot_resolved"] == "1"
    assert "billing:chat:handled" not in stats and "billing:chat:resolved" not in stats
    assert (stats["billing:chat:csat_sum"], stats["billing:chat:csat_n"]) == ("4", "1")
    (raw,) = await aredis.lrange(keys.history(T, CU), 0, -1)
    assert json.loads(raw)["bot"] is True and json.loads(raw)["csat"] == 4
    before = await everything(aredis)
    again = await state.complete(T, C1, BOT, token, "resolved", "", entry, CU, DAY, 1)
    assert again.ok and await everything(aredis) == before


async def test_a_persons_completion_with_satisfaction_counts_it(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    await create_agent(state, "a1", {Channel.CHAT: 1})
    await enqueue(state, "c1", customer="cu1")
    token = int((await reserve(state, "c1", "a1")).values[0])
    assert (await state.accept(T, C1, A1, token, DAY)).ok
    entry = {"contact": "c1", "agent": "a1", "outcome": "resolved", "note": ""}
    assert (await state.complete(T, C1, A1, token, "resolved", "", entry, CU, DAY, 5)).ok
    stats = await aredis.hgetall(keys.stats(T, DAY))
    assert stats["billing:chat:handled"] == "1" and stats["billing:chat:answered"] == "1"
    assert (stats["billing:chat:csat_sum"], stats["billing:chat:csat_n"]) == ("5", "1")
    assert "billing:chat:bot_handled" not in stats


# --- escalate -----------------------------------------------------------------------------


async def test_escalate_requeues_at_the_original_place_for_people_with_the_summary(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    await create_bot(state)
    token = await held_by_bot(state)
    await enqueue(state, "later")
    first = await escalate(state, token)
    assert first.ok
    fields = fields_of(first)
    arrived, target = int(fields["arrived_ms"]), int(fields["target_ms"])
    assert fields["status"] == "queued" and fields["bot"] == "" and fields["agent"] == ""
    assert (fields["esc_bot"], fields["esc_sum"], fields["esc_tok"]) == ("bot", "sum", str(token))
    assert int(fields["qscore"]) == 9 * 10**13 + arrived + target  # out of the bot lane
    assert await aredis.zrange(keys.queue(T), 0, -1) == ["c1", "later"]
    assert await load(aredis, "bot") == {"chat": 0}
    assert await aredis.hgetall(keys.agent_contacts(T, BOT)) == {}
    (raw,) = await aredis.lrange(keys.history(T, CU), 0, -1)
    entry = json.loads(raw)
    assert (entry["agent"], entry["note"], entry["outcome"], entry["bot"]) == (
        "bot",
        "sum",
        "transferred",
        True,
    )
    stats = await aredis.hgetall(keys.stats(T, DAY))
    assert stats["billing:chat:bot_handled"] == "1" and stats["billing:chat:bot_escalated"] == "1"
    # Run twice: the first answer, nothing changed.
    before = await everything(aredis)
    again = await escalate(state, token)
    assert again.ok and fields_of(again) == fields
    assert await everything(aredis) == before
    # A bot may no longer take it; a person may, and the wait counts from the escalation.
    assert (await reserve(state, "c1", "bot")).code == -2
    await create_agent(state, "a1", {Channel.CHAT: 1})
    offered = await reserve(state, "c1", "a1")
    assert offered.code == 1
    assert (await state.accept(T, C1, A1, int(offered.values[0]), DAY)).ok
    stats = await aredis.hgetall(keys.stats(T, DAY))
    assert stats["billing:chat:answered"] == "1" and stats["billing:chat:in_target"] == "1"


async def test_escalate_refuses_a_person_a_stale_token_and_an_unaccepted_offer(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    await create_bot(state)
    await create_agent(state, "a1", {Channel.CHAT: 1})
    await enqueue(state, "c2")
    token = int((await reserve(state, "c2", "a1")).values[0])
    assert (await state.accept(T, C2, A1, token, DAY)).ok
    await enqueue_for_bot(state, "c1")
    bot_token = int((await reserve(state, "c1", "bot")).values[0])
    before = await everything(aredis)
    entry = {"contact": "c2", "agent": "a1"}
    by_person = await state.escalate(T, C2, A1, token, "s", entry, CU, "billing", Channel.CHAT, DAY)
    assert (by_person.code, by_person.values) == (-9, ("human",))
    assert (await escalate(state, bot_token)).values == ("offered",)  # not accepted yet
    assert (await escalate(state, bot_token + 1)).code == -3  # stale token
    assert (await escalate(state, 1, "nobody")).code == -4
    assert await everything(aredis) == before


# --- callbacks ----------------------------------------------------------------------------


async def callback(state: RedisState, contact_id: str, at_ms: int) -> ScriptResult:
    return await state.request_callback(T, ContactId(contact_id), "billing", Channel.VOICE, at_ms)


async def test_a_callback_keeps_its_place_and_twice_changes_nothing_more(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    await enqueue(state, "c1", channel=Channel.VOICE, target_ms=20_000)
    await enqueue(state, "c2", channel=Channel.VOICE, target_ms=20_000)
    queue = await aredis.zrange(keys.queue(T), 0, -1, withscores=True)
    first = await callback(state, "c1", 0)
    assert first.ok
    fields = fields_of(first)
    assert (fields["cb"], fields["cb_ms"]) == ("1", "0") and int(fields["cb_req_ms"]) > 0
    assert await aredis.zrange(keys.queue(T), 0, -1, withscores=True) == queue
    before = await everything(aredis)
    assert (await callback(state, "c1", 0)).ok
    assert await everything(aredis) == before


async def test_a_scheduled_callback_waits_out_of_the_queue_until_its_time(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    await enqueue(state, "c1", channel=Channel.VOICE, target_ms=20_000)
    view = keys.view(T, "billing", Channel.VOICE)
    at = await state.now_ms() + 300
    assert (await callback(state, "c1", at)).ok
    assert await aredis.zcard(keys.queue(T)) == 0 and await aredis.zcard(view) == 0
    assert await aredis.zscore(keys.callbacks(T), "c1") == at
    assert (await reserve(state, "c1", "a1", channel=Channel.VOICE)).code == 0  # not offered
    before = await everything(aredis)
    early = await state.callback_due(T, C1, "billing", Channel.VOICE)
    assert (early.code, early.values) == (-6, (str(at),))
    assert await everything(aredis) == before
    assert await state.due_callbacks(T) == []
    await wait_past(state, at)
    assert await state.due_callbacks(T) == ["c1"]
    due = await state.callback_due(T, C1, "billing", Channel.VOICE)
    assert due.ok and int(due.values[0]) == 9 * 10**13 + at + 20_000
    assert await aredis.zrange(keys.queue(T), 0, -1) == ["c1"]
    assert await aredis.zscore(view, "c1") == at
    fields = await state.read_contact(T, C1)
    assert (fields["since_ms"], fields["cb_ms"]) == (str(at), str(at))
    before = await everything(aredis)
    assert (await state.callback_due(T, C1, "billing", Channel.VOICE)).code == 0
    assert await everything(aredis) == before


async def test_a_scheduled_callback_cancelled_leaves_the_callbacks(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    await enqueue(state, "c1", channel=Channel.VOICE)
    assert (await callback(state, "c1", await state.now_ms() + 60_000)).ok
    left = await state.abandon(
        T, C1, None, "hung_up", {"contact": "c1"}, None, "billing", Channel.VOICE, DAY
    )
    assert left.ok
    assert await aredis.zcard(keys.callbacks(T)) == 0


async def test_a_callback_is_refused_for_a_chat_and_once_offered(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    await create_agent(state, "a1", {Channel.VOICE: 1})
    await enqueue(state, "chat", channel=Channel.CHAT)
    await enqueue(state, "c1", channel=Channel.VOICE)
    assert (await reserve(state, "c1", "a1", channel=Channel.VOICE)).code == 1
    before = await everything(aredis)
    refused = await state.request_callback(T, ContactId("chat"), "billing", Channel.CHAT, 0)
    assert (refused.code, refused.values) == (-10, ("chat",))
    assert (await callback(state, "c1", 0)).values == ("offered",)
    assert (await callback(state, "nobody", 0)).code == -4
    assert await everything(aredis) == before


async def test_escalate_racing_the_bots_completion_and_itself_ends_in_one_place(
    redis_url: str, state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    clients = [redis.asyncio.Redis.from_url(redis_url, decode_responses=True) for _ in range(4)]
    try:
        others = [RedisState(c) for c in clients]
        await create_bot(state)
        for round_ in range(20):
            cid = f"r{round_}"
            token = await held_by_bot(state, cid)
            entry = {"contact": cid, "agent": "bot", "outcome": "resolved", "note": ""}
            calls = [escalate(s, token, cid) for s in others[:3]]
            calls.append(
                others[3].complete(T, ContactId(cid), BOT, token, "resolved", "", entry, CU, DAY)
            )
            results = await asyncio.gather(*calls)
            fields = await state.read_contact(T, ContactId(cid))
            queued = await aredis.zscore(keys.queue(T), cid) is not None
            if fields["status"] == "queued":  # escalated: every escalate says so, once queued
                assert [r.code for r in results[:3]] == [1, 1, 1] and results[3].code == -3
                assert queued and await aredis.zscore(keys.view(T, "billing", Channel.CHAT), cid)
            else:  # completed first: every escalate refused, nothing queued
                assert fields["status"] == "completed" and results[3].ok
                assert all(r.code == -3 for r in results[:3]) and not queued
            assert await aredis.hget(keys.agent_contacts(T, BOT), cid) is None
        assert await load(aredis, "bot") == {"chat": 0}
    finally:
        for c in clients:
            await c.aclose()
