"""Issue 9 through the API: every offer's explanation readable by supervisors and
`omniroute explain`, joint passes recorded as joint, the last agent held for a bounded wait,
repeat contacts boosted, two customers merged atomically and audited, queue-state steps
validated, and live figures as a server stream."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
import redis.asyncio

from router.auth import Role
from router.client import skills_of_rule
from router.explain_cli import main as explain_main
from router.pb.omniroute.v1 import agent_service_pb2 as agent_pb
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import resources_pb2 as pb
from router.pb.omniroute.v1 import supervisor_service_pb2 as sup_pb
from tests.grpc.conftest import Api
from tests.grpc.test_end_to_end import accept, complete, wait_until

T1 = "tenants/t1"


def cid(contact: pb.Contact) -> str:
    return contact.name.rsplit("/", 1)[-1]


async def explanation(api: Api, contact: pb.Contact) -> pb.RoutingExplanation:
    return await api.sup.GetRoutingExplanation(
        sup_pb.GetRoutingExplanationRequest(name=contact.name), metadata=api.md(Role.SUPERVISOR)
    )


async def put_rule(api: Api, issue: str, rule: pb.RoutingRule) -> pb.RoutingRule:
    rule.name = f"{T1}/routingRules/{issue}"
    await api.declare(*skills_of_rule(rule))
    return await api.sup.UpdateRoutingRule(
        sup_pb.UpdateRoutingRuleRequest(routing_rule=rule, allow_missing=True),
        metadata=api.md(Role.SUPERVISOR),
    )


def req(**skills: int) -> list[pb.SkillRequirement]:
    return [pb.SkillRequirement(skill=s, min_proficiency=n) for s, n in skills.items()]


async def test_explanation_through_the_api_and_the_command(api: Api) -> None:
    await api.create_rule("billing", {"billing": 1})
    for name, level in (("a1", 5), ("a2", 3), ("a3", 1)):
        await api.create_agent(name, {"billing": level})
    contact = await api.submit("billing", pb.CHANNEL_VOICE)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await explanation(api, contact)
    assert err.value.code() is grpc.StatusCode.NOT_FOUND  # not offered yet
    streams = [api.stream(a) for a in ("a1", "a2", "a3")]
    try:
        for a in ("a1", "a2", "a3"):
            await api.agents.SetAgentState(
                agent_pb.SetAgentStateRequest(
                    name=f"{T1}/agents/{a}", state=pb.AGENT_STATE_AWAY, away_reason="setup"
                ),
                metadata=api.md(Role.AGENT),
            )
        # All three come back at once (the rule change makes the pass see them together).
        for a in ("a1", "a2", "a3"):
            await api.agents.SetAgentState(
                agent_pb.SetAgentStateRequest(
                    name=f"{T1}/agents/{a}", state=pb.AGENT_STATE_AVAILABLE
                ),
                metadata=api.md(Role.AGENT),
            )
        await wait_until(lambda: _offered(api, contact), "the contact to be offered")  # type: ignore[arg-type]
        why = await explanation(api, contact)
        assert why.contact == contact.name and why.agent.startswith(f"{T1}/agents/")
        assert why.chosen.agent == why.agent and why.candidates[0].agent == why.agent
        assert set(why.chosen.components) == {"proficiency", "idle", "occupancy", "affinity"}
        assert why.summary and not why.joint
        assert [r.skill for r in why.required_skills] == ["billing"]
        code, out = await _run_cli(api, [cid(contact)])
        assert code == 0 and f"-> agent {why.agent.rsplit('/', 1)[-1]}" in out
        assert "candidates (score" in out
        code, _ = await _run_cli(api, ["nosuchcontact"])
        assert code == 1
    finally:
        for s in streams:
            await s.close()


async def _offered(api: Api, contact: pb.Contact) -> bool:
    got = await api.get_contact(contact.name)
    return got.state == pb.CONTACT_STATE_OFFERED


async def _run_cli(api: Api, args: list[str]) -> tuple[int, str]:
    import contextlib
    import io

    port = api.service.port
    out = io.StringIO()
    key = api.keys[("t1", Role.SUPERVISOR)]

    def run() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            return explain_main([*args, "--server", f"127.0.0.1:{port}", "--key", key])

    code = await asyncio.to_thread(run)
    return code, out.getvalue()


async def test_a_pass_with_two_contacts_and_two_open_agents_is_joint(api: Api) -> None:
    # Contacts wait for a skill nobody has; the rule then changes so both agents qualify,
    # and one pass sees two contacts and two open agents.
    await api.create_rule("billing", {"nobody": 1})
    await api.create_agent("a1", {"billing": 5, "tech": 1})
    await api.create_agent("a2", {"billing": 1})
    first = await api.submit("billing", pb.CHANNEL_VOICE)
    second = await api.submit("billing", pb.CHANNEL_VOICE)
    streams = [api.stream("a1"), api.stream("a2")]
    try:
        await api.sign_in("a1")
        await api.sign_in("a2")
        await put_rule(api, "billing", pb.RoutingRule(required_skills=req(billing=1)))
        for c in (first, second):
            await wait_until(lambda c=c: _offered(api, c), "both offered")  # type: ignore[misc]
        whys = [await explanation(api, c) for c in (first, second)]
        assert all(w.joint for w in whys)
        assert {w.agent for w in whys} == {f"{T1}/agents/a1", f"{T1}/agents/a2"}
    finally:
        for s in streams:
            await s.close()


async def test_returning_customer_waits_for_the_last_agent_within_the_bound(api: Api) -> None:
    rule = pb.RoutingRule(
        required_skills=req(billing=1),
        repeat_contacts=pb.RepeatContactPolicy(priority_boost=2),
    )
    rule.affinity_wait.FromMilliseconds(1500)
    await put_rule(api, "billing", rule)
    await api.create_agent("a1", {"billing": 3}, {pb.CHANNEL_VOICE: 1})
    await api.create_agent("a2", {"billing": 3}, {pb.CHANNEL_VOICE: 1})
    s1, s2 = api.stream("a1"), api.stream("a2")
    try:
        await api.sign_in("a1")
        first = await api.submit("billing", pb.CHANNEL_VOICE, phone="+15550100")
        offer = await s1.next_offer()
        await accept(api, offer)
        await api.agents.CompleteContact(
            agent_pb.CompleteContactRequest(
                name=offer.name, token=offer.token, outcome=pb.OUTCOME_UNRESOLVED
            ),
            metadata=api.md(Role.AGENT),
        )
        blocker = await api.submit("billing", pb.CHANNEL_VOICE)
        busy = await s1.next_offer()  # a1 is busy again with someone else
        assert busy.contact.name == blocker.name
        await api.sign_in("a2")
        back = await api.submit("billing", pb.CHANNEL_CHAT, phone="+15550100")
        assert back.customer == first.customer and back.priority == 2  # a repeat: boosted
        back = await api.submit("billing", pb.CHANNEL_VOICE, phone="+15550100")
        await asyncio.sleep(0.8)
        assert (await api.get_contact(back.name)).state == pb.CONTACT_STATE_QUEUED  # held
        offer2 = await s2.next_offer(5.0)  # the bound passed: a2 takes it
        assert offer2.contact.name == back.name
        why = await explanation(api, back)
        assert why.history["last_agent"] == "a1" and why.history["repeat"] == "unresolved"
        assert "affinity_hold" not in why.history
    finally:
        await s1.close()
        await s2.close()


async def test_two_identities_of_two_customers_merge_atomically_and_audited(
    api: Api, aredis: redis.asyncio.Redis
) -> None:
    await api.create_rule("billing", {"billing": 1})
    by_phone = await api.submit("billing", pb.CHANNEL_VOICE, phone="+15550200")
    by_mail = await api.contacts.SubmitContact(
        contact_pb.SubmitContactRequest(
            parent=T1,
            contact=pb.Contact(
                channel=pb.CHANNEL_EMAIL,
                issue="billing",
                identities=[pb.Identity(kind=pb.IDENTITY_KIND_EMAIL, value="x@example.com")],
            ),
        ),
        metadata=api.md(Role.PLATFORM),
    )
    assert by_phone.customer != by_mail.customer
    for c in (by_phone, by_mail):
        await api.contacts.CancelContact(
            contact_pb.CancelContactRequest(name=c.name, reason="gone"),
            metadata=api.md(Role.PLATFORM),
        )
    both = await api.contacts.SubmitContact(
        contact_pb.SubmitContactRequest(
            parent=T1,
            contact=pb.Contact(
                channel=pb.CHANNEL_CHAT,
                issue="billing",
                identities=[
                    pb.Identity(kind=pb.IDENTITY_KIND_PHONE, value="+15550200"),
                    pb.Identity(kind=pb.IDENTITY_KIND_EMAIL, value="x@example.com"),
                ],
            ),
        ),
        metadata=api.md(Role.PLATFORM),
    )
    keep = both.customer
    assert keep in (by_phone.customer, by_mail.customer)
    customer = await api.contacts.GetCustomer(
        contact_pb.GetCustomerRequest(name=keep), metadata=api.md(Role.PLATFORM)
    )
    assert {i.value for i in customer.identities} == {"+15550200", "x@example.com"}
    assert {h.contact for h in customer.history} == {by_phone.name, by_mail.name}
    assert both.priority == 0  # abandoned before: a repeat, but this rule boosts nothing
    audit = await api.sup.ListAuditEvents(
        sup_pb.ListAuditEventsRequest(parent=T1), metadata=api.md(Role.SUPERVISOR)
    )
    merges = [e for e in audit.audit_events if e.action == "customer.merge"]
    assert len(merges) == 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.sup.MergeCustomers(
            sup_pb.MergeCustomersRequest(name=keep, merged=f"{T1}/customers/nobody"),
            metadata=api.md(Role.SUPERVISOR),
        )
    assert err.value.code() is grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("step", "field"),
    [
        (pb.RelaxationStep(skills=req(billing=3)), "rule.steps[0]"),
        (pb.RelaxationStep(skills=req(billing=6)), "relaxation_steps[0].skills[0].min_proficiency"),
        (pb.RelaxationStep(skills=req(billing=1), service_level_below=0.0), "service_level_below"),
        (pb.RelaxationStep(skills=req(billing=1), eligible_agents_at_most=-2), "eligible_agents"),
        # Widening to a group, on a rule that names no group: every group may take it already.
        (pb.RelaxationStep(add_agent_groups=["overflow"]), "rule.steps[0].add_agent_groups"),
        (pb.RelaxationStep(add_agent_groups=["Over Flow"]), "add_agent_groups[0]"),
        (pb.RelaxationStep(), "rule.steps[0].skills"),
    ],
)
async def test_a_step_that_can_never_apply_is_invalid_and_nothing_is_saved(
    api: Api, step: pb.RelaxationStep, field: str
) -> None:
    step.after.FromSeconds(30)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await put_rule(
            api, "billing", pb.RoutingRule(required_skills=req(billing=3), relaxation_steps=[step])
        )
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await api.sup.GetRoutingRule(
            sup_pb.GetRoutingRuleRequest(name=f"{T1}/routingRules/billing"),
            metadata=api.md(Role.SUPERVISOR),
        )
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND


async def test_queue_state_step_round_trips_and_vip_senior_skill_is_added(api: Api) -> None:
    step = pb.RelaxationStep(skills=req(senior=1), eligible_agents_at_most=3)
    step.after.FromSeconds(120)
    step.expected_wait_over.FromSeconds(60)
    saved = await put_rule(
        api,
        "vip",
        pb.RoutingRule(
            required_skills=req(billing=2),
            relaxation_steps=[step],
            repeat_contacts=pb.RepeatContactPolicy(priority_boost=1, min_proficiency=4),
        ),
    )
    (got,) = saved.relaxation_steps
    assert got.eligible_agents_at_most == 3 and got.expected_wait_over.seconds == 60
    assert not got.HasField("service_level_below")
    assert saved.repeat_contacts.min_proficiency == 4


async def test_live_figures_stream_pushes_on_change(api: Api) -> None:
    await api.create_rule("billing", {"billing": 1})
    request = contact_pb.WatchQueueFiguresRequest(parent=T1)
    request.min_interval.FromMilliseconds(100)
    call = api.contacts.WatchQueueFigures(request, metadata=api.md(Role.SUPERVISOR))
    try:
        first = await asyncio.wait_for(call.read(), 5)
        assert first.waiting == 0
        assert {c.channel for c in first.channels} >= {pb.CHANNEL_VOICE, pb.CHANNEL_CHAT}
        await api.submit("billing", pb.CHANNEL_CHAT)
        pushed: Any = await asyncio.wait_for(call.read(), 5)
        while pushed.waiting == 0:
            pushed = await asyncio.wait_for(call.read(), 5)
        by = {c.channel: c for c in pushed.channels}
        assert by[pb.CHANNEL_CHAT].waiting == 1 and by[pb.CHANNEL_VOICE].waiting == 0
        assert by[pb.CHANNEL_CHAT].service_level == 1.0
    finally:
        call.cancel()


__all__ = ["complete"]


async def test_a_rule_limited_to_a_group_widens_to_another_group_after_its_step(
    api: Api,
) -> None:
    """Billing goes to the billing team; after 1.5 s the overflow site may take it too; an
    agent in no group never does. The explanation names the groups in force; moving an
    agent into the team (UpdateAgent, mask `groups`) applies to the next decision."""
    step = pb.RelaxationStep(add_agent_groups=["overflow"])
    step.after.FromMilliseconds(1500)
    saved = await put_rule(
        api,
        "billing",
        pb.RoutingRule(
            required_skills=req(billing=1), agent_groups=["team"], relaxation_steps=[step]
        ),
    )
    assert list(saved.agent_groups) == ["team"]
    assert list(saved.relaxation_steps[0].add_agent_groups) == ["overflow"]
    created = await api.create_agent("over", {"billing": 5}, groups=("overflow",))
    assert list(created.groups) == ["overflow"]
    await api.create_agent("loner", {"billing": 5})
    over, loner = api.stream("over"), api.stream("loner")
    try:
        await api.sign_in("over")
        await api.sign_in("loner")
        contact = await api.submit("billing", pb.CHANNEL_VOICE)
        await asyncio.sleep(0.8)
        assert (await api.get_contact(contact.name)).state == pb.CONTACT_STATE_QUEUED
        offer = await over.next_offer(10.0)  # the step widened the rule to the overflow site
        assert offer.contact.name == contact.name
        why = await explanation(api, contact)
        assert list(why.agent_groups) == ["overflow", "team"]
        assert list(why.relaxation_steps) == [0]
        assert "group in overflow|team" in why.summary
        moved = await api.sup.UpdateAgent(
            sup_pb.UpdateAgentRequest(
                agent=pb.Agent(name=f"{T1}/agents/loner", groups=["team"]),
                update_mask={"paths": ["groups"]},
            ),
            metadata=api.md(Role.SUPERVISOR),
        )
        assert list(moved.groups) == ["team"]
        second = await api.submit("billing", pb.CHANNEL_VOICE)
        taken = await loner.next_offer(10.0)  # in the team now: at once, no step needed
        assert taken.contact.name == second.name
        assert list((await explanation(api, second)).agent_groups) == ["team"]
    finally:
        await over.close()
        await loner.close()


@pytest.mark.parametrize(
    ("groups", "field"),
    [
        (["Team A"], "agent.groups[0]"),
        (["team", "team"], "agent.groups[1]"),
        ([f"g{k}" for k in range(51)], "agent.groups"),
    ],
)
async def test_bad_agent_groups_are_invalid_and_nothing_is_saved(
    api: Api, groups: list[str], field: str
) -> None:
    agent = pb.Agent(
        skills=[pb.Skill(skill="billing", proficiency=2)],
        capacities=[pb.ChannelCapacity(channel=pb.CHANNEL_VOICE, max_contacts=1)],
        groups=groups,
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.sup.CreateAgent(
            sup_pb.CreateAgentRequest(parent=T1, agent_id="a9", agent=agent),
            metadata=api.md(Role.SUPERVISOR),
        )
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await api.sup.GetAgent(
            sup_pb.GetAgentRequest(name=f"{T1}/agents/a9"), metadata=api.md(Role.SUPERVISOR)
        )
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
