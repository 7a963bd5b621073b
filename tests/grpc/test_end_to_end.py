"""End to end through a real gRPC client: rules and agents, offers streamed, accepted,
declined, expired and returned, completed into the customer's history, watched, counted
and audited."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
import redis.asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from router.auth import Role
from router.domain import TenantId
from router.pb.omniroute.v1 import admin_service_pb2 as admin_pb
from router.pb.omniroute.v1 import agent_service_pb2 as agent_pb
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import resources_pb2 as pb
from router.pb.omniroute.v1 import supervisor_service_pb2 as sup_pb
from router.server import SERVICE_NAMES
from tests.grpc.conftest import Api, ApiFactory

A1, A2 = "tenants/t1/agents/a1", "tenants/t1/agents/a2"


async def wait_until(check: object, what: str, wait_s: float = 20.0) -> None:
    """Poll the async predicate `check` until it holds (a bound on waiting, not speed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while not await check():  # type: ignore[operator]
        assert loop.time() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.05)


async def accept(api: Api, offer: pb.Offer) -> pb.Contact:
    return await api.agents.AcceptOffer(
        agent_pb.AcceptOfferRequest(name=offer.name, token=offer.token),
        metadata=api.md(Role.AGENT),
    )


async def complete(api: Api, offer: pb.Offer, note: str = "") -> pb.Contact:
    return await api.agents.CompleteContact(
        agent_pb.CompleteContactRequest(
            name=offer.name, token=offer.token, outcome=pb.OUTCOME_RESOLVED, note=note
        ),
        metadata=api.md(Role.AGENT),
    )


async def decline(api: Api, offer: pb.Offer) -> pb.Contact:
    return await api.agents.DeclineOffer(
        agent_pb.DeclineOfferRequest(name=offer.name, token=offer.token, reason="busy"),
        metadata=api.md(Role.AGENT),
    )


async def test_customer_returns_on_another_channel_to_the_same_agent_with_history(
    api: Api,
) -> None:
    await api.create_rule("billing", {"billing": 1})
    await api.create_agent("a1", {"billing": 3})
    await api.create_agent("a2", {"billing": 3})
    await api.sign_in("a1")
    first = await api.submit("billing", pb.CHANNEL_VOICE, phone="+15550001")
    s1, s2 = api.stream("a1"), api.stream("a2")
    try:
        await api.sign_in("a2")
        offer = await s1.next_offer()  # a1 signed in first: it alone was available
        assert offer.contact.name == first.name
        assert offer.contact.state == pb.CONTACT_STATE_OFFERED
        assigned = await accept(api, offer)
        assert assigned.state == pb.CONTACT_STATE_ASSIGNED
        assert assigned.agent == A1
        done = await complete(api, offer, note="refund issued")
        assert done.state == pb.CONTACT_STATE_COMPLETED

        second = await api.submit("billing", pb.CHANNEL_CHAT, phone="+15550001")
        assert second.customer == first.customer
        again = await s1.next_offer()
        assert again.contact.name == second.name
        assert again.contact.channel == pb.CHANNEL_CHAT
        assert "affinity 1.00" in again.reason
        history = list(again.customer.history)
        assert [h.contact for h in history] == [first.name]
        assert history[0].note == "refund issued"
        assert history[0].agent == A1
        assert history[0].channel == pb.CHANNEL_VOICE
        assert history[0].outcome == pb.OUTCOME_RESOLVED
        assert s2.events.empty()
    finally:
        await s1.close()
        await s2.close()


async def test_skill_change_applies_to_the_very_next_routing_decision(api: Api) -> None:
    proficiency_only = pb.ScoringWeights(proficiency=10, idle=0, occupancy=0, affinity=0)
    await api.create_rule("billing", {"billing": 1}, weights=proficiency_only)
    await api.create_agent("a1", {"billing": 1})
    await api.create_agent("a2", {"billing": 5})
    await api.sign_in("a1")
    await api.sign_in("a2")
    for agent, level in (("a1", 5), ("a2", 1)):
        await api.sup.SetSkill(
            sup_pb.SetSkillRequest(
                agent=f"tenants/t1/agents/{agent}",
                skill=pb.Skill(skill="billing", proficiency=level),
            ),
            metadata=api.md(Role.SUPERVISOR),
        )
    s1 = api.stream("a1")
    try:
        contact = await api.submit("billing")
        offer = await s1.next_offer()
        assert offer.contact.name == contact.name
        assert offer.name.startswith(A1 + "/offers/")
    finally:
        await s1.close()


async def test_declined_offer_returns_ahead_of_newer_contacts(
    api: Api, aredis: redis.asyncio.Redis
) -> None:
    await api.create_rule("billing", {"billing": 1})
    await api.create_agent("a1", {"billing": 3}, {pb.CHANNEL_CHAT: 1})
    await api.sign_in("a1")
    s1 = api.stream("a1")
    try:
        older = await api.submit("billing", pb.CHANNEL_CHAT)
        offer = await s1.next_offer()
        assert offer.contact.name == older.name
        newer = await api.submit("billing", pb.CHANNEL_CHAT)
        # The only slot is taken: the newer contact waits.
        assert (await api.get_contact(newer.name)).state == pb.CONTACT_STATE_QUEUED
        returned = await decline(api, offer)
        assert returned.state in (pb.CONTACT_STATE_QUEUED, pb.CONTACT_STATE_OFFERED)
        # Nobody else can take it: it comes back to a1, before the newer contact.
        again = await s1.next_offer()
        assert again.contact.name == older.name
        assert again.token > offer.token
        assert (await api.get_contact(newer.name)).state == pb.CONTACT_STATE_QUEUED
    finally:
        await s1.close()


async def test_expired_offers_return_to_the_queue_and_misses_set_the_agent_away(
    make_api: ApiFactory,
) -> None:
    api = await make_api(offer_timeout_s=0.3, max_missed_offers=2)
    await api.create_rule("billing", {"billing": 1})
    await api.create_agent("a1", {"billing": 3})
    await api.sign_in("a1")
    s1 = api.stream("a1")
    try:
        contact = await api.submit("billing")
        tokens = []
        withdrawn = []
        while len(withdrawn) < 2:
            event = await s1.next()
            if event.HasField("offer"):
                tokens.append(event.offer.token)
            elif event.HasField("withdrawn"):
                withdrawn.append(event.withdrawn)
        assert [w.reason for w in withdrawn] == ["expired", "expired"]
        assert tokens == [1, 2]

        async def away() -> bool:
            return (await api.get_agent("a1")).state == pb.AGENT_STATE_AWAY

        await wait_until(away, "a1 set away")
        agent = await api.get_agent("a1")
        assert agent.away_reason == "no_answer"
        assert agent.missed_offers == 2
        assert not agent.load or all(load.contacts == 0 for load in agent.load)
        assert (await api.get_contact(contact.name)).state == pb.CONTACT_STATE_QUEUED
    finally:
        await s1.close()


async def test_sign_out_returns_pending_offers_to_the_queue(api: Api) -> None:
    await api.create_rule("billing", {"billing": 1})
    await api.create_agent("a1", {"billing": 3})
    await api.sign_in("a1")
    s1 = api.stream("a1")
    try:
        contact = await api.submit("billing")
        await s1.next_offer()
        agent = await api.agents.SignOut(
            agent_pb.SignOutRequest(name=A1), metadata=api.md(Role.AGENT)
        )
        assert agent.state == pb.AGENT_STATE_SIGNED_OUT
        assert all(load.contacts == 0 for load in agent.load)
        back = await api.get_contact(contact.name)
        assert back.state == pb.CONTACT_STATE_QUEUED
        event = await s1.next()
        assert event.withdrawn.reason == "withdrawn"
    finally:
        await s1.close()


async def test_stream_tells_the_agent_what_it_holds_when_an_accept_reply_was_lost(
    api: Api,
) -> None:
    """A desktop whose accept reply was lost (its replica died) must still learn that it
    holds the contact: the open stream sends `held` after the accept, and a stream opened
    later sends every held contact first, with the token CompleteContact needs."""
    await api.create_rule("billing", {"billing": 1})
    await api.create_agent("a1", {"billing": 3})
    await api.sign_in("a1")
    s1 = api.stream("a1")
    try:
        await api.submit("billing", pb.CHANNEL_CHAT)
        offer = await s1.next_offer()
        await accept(api, offer)  # as if its reply never came back
        event = await s1.next()
        assert event.WhichOneof("event") == "held"
        assert (event.held.name, event.held.token) == (offer.name, offer.token)
        assert event.held.contact.state == pb.CONTACT_STATE_ASSIGNED
    finally:
        await s1.close()
    s2 = api.stream("a1")  # the desktop restarts
    try:
        event = await s2.next()
        assert event.WhichOneof("event") == "held"
        assert (event.held.name, event.held.token) == (offer.name, offer.token)
        await complete(api, event.held)
        done = await api.get_contact(offer.contact.name)
        assert done.state == pb.CONTACT_STATE_COMPLETED
    finally:
        await s2.close()
    s3 = api.stream("a1")  # nothing held any more: nothing re-sent
    try:
        with pytest.raises(TimeoutError):
            await s3.next(wait_s=1.0)
    finally:
        await s3.close()


async def test_watch_contact_streams_queued_offered_assigned_completed(api: Api) -> None:
    await api.create_rule("billing", {"billing": 1})
    await api.create_agent("a1", {"billing": 3})
    contact = await api.submit("billing")
    watch = api.contacts.WatchContact(
        contact_pb.WatchContactRequest(name=contact.name), metadata=api.md(Role.PLATFORM)
    )
    first = await watch.read()
    assert (first.event, first.contact.state) == ("queued", pb.CONTACT_STATE_QUEUED)
    s1 = api.stream("a1")
    try:
        await api.sign_in("a1")
        offer = await s1.next_offer()
        offered = await watch.read()
        assert (offered.event, offered.contact.state) == ("offered", pb.CONTACT_STATE_OFFERED)
        await accept(api, offer)
        assigned = await watch.read()
        assert (assigned.event, assigned.contact.state) == ("assigned", pb.CONTACT_STATE_ASSIGNED)
        await complete(api, offer)
        completed = await watch.read()
        assert completed.event == "completed"
        assert completed.contact.state == pb.CONTACT_STATE_COMPLETED
        assert await watch.read() is grpc.aio.EOF
    finally:
        await s1.close()


async def test_queue_stats_and_wait_estimate_count_waiting_contacts(api: Api) -> None:
    await api.create_rule("billing", {"billing": 1})
    await api.create_agent("a1", {"billing": 3}, {pb.CHANNEL_VOICE: 2})
    for _ in range(3):
        await api.submit("billing", pb.CHANNEL_VOICE)
    await api.submit("billing", pb.CHANNEL_EMAIL)
    stats = await api.contacts.GetQueueStats(
        contact_pb.GetQueueStatsRequest(parent="tenants/t1"), metadata=api.md(Role.SUPERVISOR)
    )
    assert stats.waiting == 4
    assert (stats.agents_available, stats.agents_signed_in) == (0, 0)
    by_view = {(v.issue, v.channel): v for v in stats.views}
    assert by_view[("billing", pb.CHANNEL_VOICE)].waiting == 3
    assert by_view[("billing", pb.CHANNEL_EMAIL)].waiting == 1
    voice_only = await api.contacts.GetQueueStats(
        contact_pb.GetQueueStatsRequest(parent="tenants/t1", channel=pb.CHANNEL_VOICE),
        metadata=api.md(Role.PLANNER),
    )
    assert [(v.issue, v.waiting) for v in voice_only.views] == [("billing", 3)]
    unknown = await api.contacts.EstimateWait(
        contact_pb.EstimateWaitRequest(parent="tenants/t1", issue="billing", channel=1),
        metadata=api.md(Role.PLATFORM),
    )
    assert unknown.contacts_ahead == 3
    assert unknown.eligible_agents == 0
    assert not unknown.HasField("expected_wait")
    # a1 signs in with two voice slots: two contacts go to it, one waits for a slot.
    await api.sign_in("a1")

    async def one_waiting() -> bool:
        figures = await api.contacts.GetQueueStats(
            contact_pb.GetQueueStatsRequest(parent="tenants/t1", channel=pb.CHANNEL_VOICE),
            metadata=api.md(Role.SUPERVISOR),
        )
        return figures.waiting == 2 and figures.views[0].waiting == 1

    await wait_until(one_waiting, "two voice contacts offered")
    estimate = await api.contacts.EstimateWait(
        contact_pb.EstimateWaitRequest(parent="tenants/t1", issue="billing", channel=1),
        metadata=api.md(Role.PLATFORM),
    )
    # (1 ahead + 1 - 0 free) x AHT 300 s (default, nothing handled yet) / 2 slots
    assert estimate.contacts_ahead == 1
    assert estimate.eligible_agents == 2
    assert estimate.expected_wait.ToSeconds() == 300
    stats = await api.contacts.GetQueueStats(
        contact_pb.GetQueueStatsRequest(parent="tenants/t1"), metadata=api.md(Role.SUPERVISOR)
    )
    assert (stats.agents_available, stats.agents_signed_in) == (1, 1)


async def test_submit_contact_is_idempotent_by_request_id(api: Api) -> None:
    await api.create_rule("billing", {"billing": 1})
    first = await api.submit("billing", phone="+1555", request_id="req-1")
    again = await api.submit("billing", phone="+1555", request_id="req-1")
    assert again.name == first.name
    other = await api.submit("billing", phone="+1555", request_id="req-2")
    assert other.name != first.name
    stats = await api.contacts.GetQueueStats(
        contact_pb.GetQueueStatsRequest(parent="tenants/t1"), metadata=api.md(Role.PLATFORM)
    )
    assert stats.waiting == 2


async def test_audit_log_records_before_and_after_of_every_supervisor_change(api: Api) -> None:
    sup = api.md(Role.SUPERVISOR)
    await api.create_rule("billing", {"billing": 1})
    await api.sup.UpdateRoutingRule(
        sup_pb.UpdateRoutingRuleRequest(
            routing_rule=pb.RoutingRule(
                name="tenants/t1/routingRules/billing",
                required_skills=[pb.SkillRequirement(skill="billing", min_proficiency=2)],
            )
        ),
        metadata=sup,
    )
    await api.create_agent("a1", {"billing": 3})
    await api.sup.SetSkill(
        sup_pb.SetSkillRequest(agent=A1, skill=pb.Skill(skill="lang.fr", proficiency=4)),
        metadata=sup,
    )
    await api.sup.RemoveSkill(sup_pb.RemoveSkillRequest(agent=A1, skill="lang.fr"), metadata=sup)
    await api.sup.UpdateAgent(
        sup_pb.UpdateAgentRequest(
            agent=pb.Agent(name=A1, display_name="Ann"),
            update_mask={"paths": ["display_name"]},
        ),
        metadata=sup,
    )
    await api.sign_in("a1")
    await api.agents.SetAgentState(
        agent_pb.SetAgentStateRequest(name=A1, state=pb.AGENT_STATE_AWAY, away_reason="coaching"),
        metadata=sup,
    )
    await api.agents.SignOut(agent_pb.SignOutRequest(name=A1), metadata=sup)
    await api.sup.DeleteAgent(sup_pb.DeleteAgentRequest(name=A1), metadata=sup)
    await api.sup.DeleteRoutingRule(
        sup_pb.DeleteRoutingRuleRequest(name="tenants/t1/routingRules/billing"), metadata=sup
    )
    created = await api.admin.CreateApiKey(
        admin_pb.CreateApiKeyRequest(
            parent="tenants/t1", api_key=pb.ApiKey(role=pb.ROLE_PLANNER, display_name="p")
        ),
        metadata=api.md(Role.ADMIN),
    )
    await api.admin.RevokeApiKey(
        admin_pb.RevokeApiKeyRequest(name=created.api_key.name), metadata=api.md(Role.ADMIN)
    )
    listing = await api.sup.ListAuditEvents(
        sup_pb.ListAuditEventsRequest(parent="tenants/t1", page_size=100), metadata=sup
    )
    events = list(reversed(listing.audit_events))  # oldest first
    supervisor = next(e.actor for e in events if e.action == "CreateRoutingRule")
    actions = [e.action for e in events if e.actor == supervisor]
    assert actions == [
        "CreateRoutingSkill",  # the catalogue before the rule (``Api.create_rule``)
        "CreateRoutingRule",
        "UpdateRoutingRule",
        "CreateAgent",
        "SetSkill",
        "RemoveSkill",
        "UpdateAgent",
        "SetAgentState",
        "SetAgentState",
        "DeleteAgent",
        "DeleteRoutingRule",
    ]
    admin = [e.action for e in events if e.actor not in (supervisor, "test", "system")]
    assert admin == ["SetAgentState", "CreateApiKey", "RevokeApiKey"]  # agent signs in
    by_action = {e.action: e for e in events}
    rule_update = by_action["UpdateRoutingRule"]
    assert json.loads(rule_update.before)["skills"] == {"billing": 1}
    assert json.loads(rule_update.after)["skills"] == {"billing": 2}
    skill_set = by_action["SetSkill"]
    assert "lang.fr" not in json.loads(skill_set.before)["skills"]
    assert json.loads(skill_set.after)["skills"]["lang.fr"] == 4
    assert by_action["CreateAgent"].before == ""
    assert json.loads(by_action["CreateAgent"].after)["skills"] == {"billing": 3}
    assert json.loads(by_action["DeleteAgent"].before)["display_name"] == "Ann"
    assert by_action["DeleteAgent"].after == ""
    assert by_action["DeleteRoutingRule"].after == ""
    states = [(e.before, e.after) for e in events if e.action == "SetAgentState"]
    assert states == [
        ("signed_out", "available"),
        ("available", "away:coaching"),
        ("away:coaching", "signed_out"),
    ]
    assert by_action["RevokeApiKey"].target == created.api_key.name


async def test_health_is_serving_and_reflection_lists_the_services(api: Api) -> None:
    health = health_pb2_grpc.HealthStub(api.channel)
    for name in ("", *SERVICE_NAMES):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(api.channel)
    call = reflection.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    reply = await call.read()
    await call.done_writing()
    listed = {s.name for s in reply.list_services_response.service}
    assert set(SERVICE_NAMES) <= listed
    assert {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= listed
    assert set(SERVICE_NAMES) == {
        "omniroute.v1.ContactService",
        "omniroute.v1.AgentService",
        "omniroute.v1.SupervisorService",
        "omniroute.v1.AdminService",
        "omniroute.v1.PlanningService",
    }


async def test_a_rule_read_in_flight_never_lands_over_a_newer_rule(api: Api) -> None:
    """A routing pass's read of the rules, begun before a rule was written, finishes after
    the read that saw it: the older answer must not replace the newer (a submit right
    after CreateRoutingRule on this replica then found no rule)."""
    engine = api.service.engine
    router = engine.router(TenantId("t1"))
    state = engine.state
    original = state.read_rules
    gate = asyncio.Event()

    async def slow_read(tenant: TenantId) -> dict[str, str]:
        raw = await original(tenant)  # before the rule exists
        await gate.wait()
        return raw

    state.read_rules = slow_read  # type: ignore[method-assign]
    router.rules_changed()
    in_flight = asyncio.create_task(router.refresh_rules())
    await asyncio.sleep(0.05)
    state.read_rules = original  # type: ignore[method-assign]
    await api.create_rule("billing", {"billing": 1})
    first = asyncio.create_task(api.submit("billing"))
    await asyncio.sleep(0.05)
    gate.set()
    await in_flight
    assert (await first).state == pb.CONTACT_STATE_QUEUED
    second = await api.submit("billing")  # the rule book must still hold the rule
    assert second.state == pb.CONTACT_STATE_QUEUED


async def test_contacts_nobody_can_take_do_not_hide_others_behind_them(
    make_api: ApiFactory,
) -> None:
    """A queue longer than one routing pass reads (``queue_scan``), headed by calls no
    agent can take (nobody has voice capacity): a chat behind them still goes to the free
    chat agent."""
    api = await make_api(queue_scan=4)
    await api.create_rule("billing", {"billing": 1})
    await api.create_agent("a1", {"billing": 3}, {pb.CHANNEL_CHAT: 2})
    for _ in range(6):
        await api.submit("billing", pb.CHANNEL_VOICE)
    chat = await api.submit("billing", pb.CHANNEL_CHAT)
    await api.sign_in("a1")
    s1 = api.stream("a1")
    try:
        offer = await s1.next_offer(wait_s=10.0)
        assert offer.contact.name == chat.name
    finally:
        await s1.close()
