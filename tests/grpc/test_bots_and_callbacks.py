"""Bots first and callbacks through the API, over a real server and a real Redis: a rule
sends an issue to a bot, which resolves it or escalates it to people at its original place
with its summary in the customer's history; a caller is called back at their place or at
the time they chose; satisfaction and bot containment show in the live figures; bad input
is refused naming the field and changes nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio
from structlog.testing import capture_logs

from router.auth import Role
from router.pb.omniroute.v1 import agent_service_pb2 as agent_pb
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import resources_pb2 as pb
from router.pb.omniroute.v1 import supervisor_service_pb2 as sup_pb
from tests.grpc.conftest import Api, snapshot
from tests.grpc.test_bad_input import refused
from tests.grpc.test_cli import Cli
from tests.grpc.test_end_to_end import accept, wait_until

T1 = "tenants/t1"
INVALID = grpc.StatusCode.INVALID_ARGUMENT
FAILED = grpc.StatusCode.FAILED_PRECONDITION
SUMMARY = "wants a refund of the March invoice; card ending 4242 already checked"


async def put_rule(api: Api, issue: str, *, bot_first: bool = False) -> pb.RoutingRule:
    rule = pb.RoutingRule(
        name=f"{T1}/routingRules/{issue}",
        required_skills=[pb.SkillRequirement(skill="billing", min_proficiency=1)],
        bot_first=bot_first,
    )
    await api.declare("billing")
    return await api.sup.UpdateRoutingRule(
        sup_pb.UpdateRoutingRuleRequest(routing_rule=rule, allow_missing=True),
        metadata=api.md(Role.SUPERVISOR),
    )


async def create_bot(api: Api, agent_id: str = "bot") -> pb.Agent:
    agent = pb.Agent(
        display_name="Billing bot",
        kind=pb.AGENT_KIND_BOT,
        skills=[pb.Skill(skill="billing", proficiency=2)],
        capacities=[
            pb.ChannelCapacity(channel=pb.CHANNEL_CHAT, max_contacts=1),
            pb.ChannelCapacity(channel=pb.CHANNEL_VOICE, max_contacts=1),
        ],
    )
    return await api.sup.CreateAgent(
        sup_pb.CreateAgentRequest(parent=T1, agent_id=agent_id, agent=agent),
        metadata=api.md(Role.SUPERVISOR),
    )


async def escalate(api: Api, name: str, token: int, summary: str = SUMMARY) -> pb.Contact:
    return await api.contacts.EscalateContact(
        contact_pb.EscalateContactRequest(name=name, token=token, summary=summary),
        metadata=api.md(Role.PLATFORM),
    )


async def callback(api: Api, name: str, at_ms: int | None = None) -> pb.Contact:
    request = contact_pb.RequestCallbackRequest(name=name)
    if at_ms is not None:
        request.callback_time.FromMilliseconds(at_ms)
    return await api.contacts.RequestCallback(request, metadata=api.md(Role.PLATFORM))


async def complete(api: Api, offer: pb.Offer, outcome: int, satisfaction: int) -> pb.Contact:
    return await api.agents.CompleteContact(
        agent_pb.CompleteContactRequest(
            name=offer.name, token=offer.token, outcome=outcome, satisfaction=satisfaction
        ),
        metadata=api.md(Role.PLATFORM),
    )


async def redis_ms(aredis: redis.asyncio.Redis) -> int:
    seconds, micros = await aredis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def chat_figures(api: Api, done: Any) -> contact_pb.ChannelFigures:
    """The chat row of the first live-figures push for which `done(row)` holds."""
    request = contact_pb.WatchQueueFiguresRequest(parent=T1)
    request.min_interval.FromMilliseconds(100)
    call = api.contacts.WatchQueueFigures(request, metadata=api.md(Role.SUPERVISOR))
    try:
        while True:
            push = await asyncio.wait_for(call.read(), 15)
            (row,) = [c for c in push.channels if c.channel == pb.CHANNEL_CHAT]
            if done(row):
                return row
    finally:
        call.cancel()


async def test_a_bot_resolves_contacts_without_a_capacity_limit_and_containment_shows(
    api: Api,
) -> None:
    await put_rule(api, "billing", bot_first=True)
    await create_bot(api)
    await api.create_agent("a1", {"billing": 5})  # a free person: the bot still comes first
    bot, person = api.stream("bot"), api.stream("a1")
    try:
        await api.sign_in("bot")
        await api.sign_in("a1")
        first = await api.submit("billing", pb.CHANNEL_CHAT, phone="+15550300")
        second = await api.submit("billing", pb.CHANNEL_CHAT, phone="+15550301")
        assert first.bot_first
        offers = {o.contact.name: o for o in [await bot.next_offer(), await bot.next_offer()]}
        assert set(offers) == {first.name, second.name}  # two at once on a capacity of 1
        assert all("bot first" in o.reason for o in offers.values())
        one, two = offers[first.name], offers[second.name]
        for offer in (one, two):
            await api.agents.AcceptOffer(
                agent_pb.AcceptOfferRequest(name=offer.name, token=offer.token),
                metadata=api.md(Role.PLATFORM),
            )
        done = await complete(api, one, pb.OUTCOME_RESOLVED, 5)
        assert done.state == pb.CONTACT_STATE_COMPLETED and done.satisfaction == 5
        customer = await api.contacts.GetCustomer(
            contact_pb.GetCustomerRequest(name=done.customer), metadata=api.md(Role.PLATFORM)
        )
        (entry,) = customer.history
        assert entry.bot and entry.satisfaction == 5 and entry.outcome == pb.OUTCOME_RESOLVED
        await escalate(api, second.name, two.token)
        row = await chat_figures(api, lambda r: r.bot_containment > 0)
        assert row.bot_containment == 0.5  # one resolved of two the bot handled
        assert (row.satisfaction, row.satisfaction_count) == (5.0, 1)
        handed_on = await person.next_offer()  # the escalated one, to the person
        assert handed_on.contact.name == second.name
    finally:
        await bot.close()
        await person.close()


async def test_an_escalated_contact_waits_at_its_original_place_with_the_summary(
    api: Api,
) -> None:
    await put_rule(api, "billing", bot_first=True)
    await put_rule(api, "other")
    await create_bot(api)
    await api.create_agent("a1", {"billing": 3}, {pb.CHANNEL_VOICE: 1})
    bot = api.stream("bot")
    person = api.stream("a1")
    try:
        await api.sign_in("bot")
        first = await api.submit("billing", pb.CHANNEL_VOICE, phone="+15550400", priority=2)
        offer = await bot.next_offer()
        assert offer.contact.name == first.name
        held = await api.agents.AcceptOffer(
            agent_pb.AcceptOfferRequest(name=offer.name, token=offer.token),
            metadata=api.md(Role.PLATFORM),
        )
        assert held.state == pb.CONTACT_STATE_ASSIGNED
        later = await api.submit("other", pb.CHANNEL_VOICE, priority=2)
        escalated = await escalate(api, first.name, offer.token)
        assert escalated.state == pb.CONTACT_STATE_QUEUED and not escalated.bot_first
        assert escalated.escalation.bot == f"{T1}/agents/bot"
        assert escalated.escalation.summary == SUMMARY
        assert escalated.create_time == first.create_time and escalated.priority == 2
        again = await escalate(api, first.name, offer.token)  # a retry: the same answer
        assert again.escalation == escalated.escalation
        await api.sign_in("a1")
        human = await person.next_offer()
        assert human.contact.name == first.name  # ahead of the later contact
        assert human.contact.escalation.summary == SUMMARY
        assert human.contact.create_time == first.create_time
        (entry,) = human.customer.history
        assert entry.bot and entry.note == SUMMARY and entry.outcome == pb.OUTCOME_TRANSFERRED
        assert entry.agent == f"{T1}/agents/bot"
        await accept(api, human)
        waiting = await api.get_contact(later.name)
        assert waiting.state == pb.CONTACT_STATE_QUEUED
    finally:
        await bot.close()
        await person.close()


async def test_without_a_bot_signed_in_people_take_bot_first_contacts(api: Api) -> None:
    await put_rule(api, "billing", bot_first=True)
    await create_bot(api)  # signed out
    await api.create_agent("a1", {"billing": 3})
    person = api.stream("a1")
    try:
        await api.sign_in("a1")
        contact = await api.submit("billing", pb.CHANNEL_CHAT)
        offer = await person.next_offer()
        assert offer.contact.name == contact.name
    finally:
        await person.close()


async def test_a_callback_keeps_its_place_and_is_offered_as_an_outbound_voice_call(
    api: Api,
) -> None:
    await put_rule(api, "billing")
    await api.create_agent("a1", {"billing": 3}, {pb.CHANNEL_CHAT: 3})  # no voice capacity
    await api.create_agent("a2", {"billing": 3}, {pb.CHANNEL_VOICE: 1, pb.CHANNEL_CHAT: 1})
    first = await api.submit("billing", pb.CHANNEL_VOICE, phone="+15550500")
    second = await api.submit("billing", pb.CHANNEL_VOICE)
    marked = await callback(api, first.name)
    assert marked.HasField("callback") and marked.callback.request_time.seconds > 0
    assert not marked.callback.HasField("callback_time")
    assert marked.state == pb.CONTACT_STATE_QUEUED
    chat_only, voice = api.stream("a1"), api.stream("a2")
    try:
        await api.sign_in("a1")
        await api.sign_in("a2")
        offer = await voice.next_offer()
        assert offer.contact.name == first.name  # its place kept, ahead of the second
        assert offer.contact.HasField("callback") and offer.contact.channel == pb.CHANNEL_VOICE
        assert chat_only.events.empty()
        await accept(api, offer)
        assert (await api.get_contact(second.name)).state == pb.CONTACT_STATE_QUEUED
    finally:
        await chat_only.close()
        await voice.close()


async def test_a_scheduled_callback_is_not_offered_before_its_time(
    api: Api, aredis: redis.asyncio.Redis
) -> None:
    await put_rule(api, "billing")
    await api.create_agent("a1", {"billing": 3}, {pb.CHANNEL_VOICE: 1})
    contact = await api.submit("billing", pb.CHANNEL_VOICE, phone="+15550600")
    at_ms = await redis_ms(aredis) + 1500
    scheduled = await callback(api, contact.name, at_ms)
    assert scheduled.callback.callback_time.ToMilliseconds() == at_ms
    stream = api.stream("a1")
    try:
        await api.sign_in("a1")
        stats = await api.contacts.GetQueueStats(
            contact_pb.GetQueueStatsRequest(parent=T1), metadata=api.md(Role.PLATFORM)
        )
        if await redis_ms(aredis) < at_ms:  # out of the queue until its time
            assert stats.waiting == 0
            assert (await api.get_contact(contact.name)).state == pb.CONTACT_STATE_QUEUED
        offer = await stream.next_offer()
        assert offer.contact.name == contact.name
        assert offer.contact.offer_time.ToMilliseconds() >= at_ms
        assert offer.contact.callback.callback_time.ToMilliseconds() == at_ms
    finally:
        await stream.close()


# --- bad input: named, and nothing changes --------------------------------------------------


async def settled(aredis: redis.asyncio.Redis) -> None:
    """Wait until background work (sweeps, routing passes) leaves Redis alone, so a refused
    call's digest compares like with like."""
    before = await snapshot(aredis)
    while True:
        await asyncio.sleep(0.2)
        after = await snapshot(aredis)
        if after == before:
            return
        before = after


@pytest.fixture
async def held(api: Api, aredis: redis.asyncio.Redis) -> dict[str, Any]:
    """A bot-first rule, a bot holding a chat contact, a person holding a voice contact, and
    a waiting chat contact: names and tokens."""
    await put_rule(api, "billing", bot_first=True)
    await put_rule(api, "voice_only")
    await create_bot(api)
    await api.create_agent("a1", {"billing": 3}, {pb.CHANNEL_VOICE: 1})
    await api.sign_in("bot")
    by_bot = await api.submit("billing", pb.CHANNEL_CHAT, phone="+15550700")
    await api.sign_in("a1")
    by_person = await api.submit("voice_only", pb.CHANNEL_VOICE)
    for contact, agent in ((by_bot, "bot"), (by_person, "a1")):
        await wait_until(
            lambda c=contact: _offered(api, c),  # type: ignore[misc]
            "the contacts to be offered",
        )
        token = (await api.get_contact(contact.name)).offer_token
        await api.agents.AcceptOffer(
            agent_pb.AcceptOfferRequest(
                name=f"{T1}/agents/{agent}/offers/{contact.name.rsplit('/', 1)[1]}", token=token
            ),
            metadata=api.md(Role.PLATFORM),
        )
    chat = await api.submit("voice_only", pb.CHANNEL_CHAT)
    await settled(aredis)
    return {
        "bot": (by_bot.name, (await api.get_contact(by_bot.name)).offer_token),
        "person": (by_person.name, (await api.get_contact(by_person.name)).offer_token),
        "chat": chat.name,
        "api": api,
    }


async def _offered(api: Api, contact: pb.Contact) -> bool:
    return (await api.get_contact(contact.name)).state == pb.CONTACT_STATE_OFFERED


async def test_escalating_a_contact_a_person_holds_is_failed_precondition(
    held: dict[str, Any], aredis: redis.asyncio.Redis
) -> None:
    name, token = held["person"]
    message = await refused(aredis, escalate(held["api"], name, token), FAILED, "name")
    assert "not a bot" in message


async def test_escalating_with_a_stale_token_is_failed_precondition(
    held: dict[str, Any], aredis: redis.asyncio.Redis
) -> None:
    name, token = held["bot"]
    await refused(aredis, escalate(held["api"], name, token + 1), FAILED, "token")


@pytest.mark.parametrize(
    ("token", "summary", "field"),
    [(0, "", "token"), (-3, "", "token"), (None, "x" * 2049, "summary")],
)
async def test_escalate_with_a_bad_token_or_summary_is_invalid(
    held: dict[str, Any],
    aredis: redis.asyncio.Redis,
    token: int | None,
    summary: str,
    field: str,
) -> None:
    name, good = held["bot"]
    call = escalate(held["api"], name, good if token is None else token, summary)
    await refused(aredis, call, INVALID, field)


async def test_escalating_or_calling_back_an_unknown_contact_is_not_found(
    held: dict[str, Any], aredis: redis.asyncio.Redis
) -> None:
    api = held["api"]
    ghost = f"{T1}/contacts/ghost"
    await refused(aredis, escalate(api, ghost, 1), grpc.StatusCode.NOT_FOUND, "name", "ghost")
    await refused(aredis, callback(api, ghost), grpc.StatusCode.NOT_FOUND, "name", "ghost")


@pytest.mark.parametrize(
    ("offset_s", "word"), [(-5, "future"), (-86_400, "future"), (8 * 86_400, "7 days")]
)
async def test_a_callback_time_in_the_past_or_too_far_ahead_is_invalid(
    held: dict[str, Any], aredis: redis.asyncio.Redis, offset_s: int, word: str
) -> None:
    api = held["api"]
    at_ms = await redis_ms(aredis) + offset_s * 1000
    message = await refused(aredis, callback(api, held["chat"], at_ms), INVALID, "callback_time")
    assert word in message


async def test_a_callback_for_a_chat_or_a_contact_in_hand_is_failed_precondition(
    held: dict[str, Any], aredis: redis.asyncio.Redis
) -> None:
    api = held["api"]
    message = await refused(aredis, callback(api, held["chat"]), FAILED, "name")
    assert "voice" in message
    message = await refused(aredis, callback(api, held["person"][0]), FAILED, "name")
    assert "assigned" in message


@pytest.mark.parametrize("score", [0, 6, -1])
async def test_a_satisfaction_outside_1_to_5_is_invalid(
    held: dict[str, Any], aredis: redis.asyncio.Redis, score: int
) -> None:
    api = held["api"]
    name, token = held["person"]
    offer = pb.Offer(name=f"{T1}/agents/a1/offers/{name.rsplit('/', 1)[1]}", token=token)
    call = complete(api, offer, pb.OUTCOME_RESOLVED, score)
    message = await refused(aredis, call, INVALID, "satisfaction")
    assert str(score) in message


# --- the supervisor command line --------------------------------------------------------------


async def test_the_command_line_creates_a_bot_and_a_bot_first_rule(
    api: Api, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cli = Cli(api.service.port, api.keys[("t1", Role.ADMIN)], capsys)
    with capture_logs():  # the service's logs would otherwise mix with the command's output
        await _command_line(cli, tmp_path)


async def _command_line(cli: Cli, tmp_path: Path) -> None:
    code, _, err = await cli("agents", "create", "faq", "--bot", "--skill", "billing=2",
                             "--capacity", "chat=1")  # fmt: skip
    assert code == 0, err
    assert (await cli.json("agents", "show", "faq"))["kind"] == "AGENT_KIND_BOT"
    code, _, err = await cli("rules", "put", "billing", "--skill", "billing=1", "--bot-first")
    assert code == 0, err
    assert "a bot, then people" in (await cli("rules", "show", "billing"))[1]
    assert (await cli.json("rules", "show", "billing"))["botFirst"] is True
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  refunds:\n    skills: {billing: 1}\n    bot_first: yes\n")
    code, _, err = await cli("rules", "put", "--file", str(path))
    assert code == 0, err
    assert (await cli.json("rules", "show", "refunds"))["botFirst"] is True
