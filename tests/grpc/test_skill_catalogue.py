"""The skill catalogue through the API: a rule naming an unknown skill is refused naming the
field and nothing is saved; a skill is known while declared, held by an agent or named by a
rule; the counts follow every agent and rule write, also under concurrent writers; a
declaration cannot be withdrawn from under a rule that needs it."""

from __future__ import annotations

import asyncio
import random

import grpc
import pytest
import redis.asyncio

from queues import keys
from router.auth import Role
from router.domain import TenantId
from router.pb.omniroute.v1 import resources_pb2 as pb
from router.pb.omniroute.v1 import supervisor_service_pb2 as sup_pb
from tests.grpc.conftest import Api, snapshot

T1 = "tenants/t1"


def req(**skills: int) -> list[pb.SkillRequirement]:
    return [pb.SkillRequirement(skill=s, min_proficiency=n) for s, n in skills.items()]


async def put_rule(api: Api, issue: str, rule: pb.RoutingRule) -> pb.RoutingRule:
    """UpdateRoutingRule (allow_missing), without declaring anything first."""
    rule.name = f"{T1}/routingRules/{issue}"
    return await api.sup.UpdateRoutingRule(
        sup_pb.UpdateRoutingRuleRequest(routing_rule=rule, allow_missing=True),
        metadata=api.md(Role.SUPERVISOR),
    )


async def catalogue(api: Api) -> dict[str, tuple[bool, int, int]]:
    reply = await api.sup.ListRoutingSkills(
        sup_pb.ListRoutingSkillsRequest(parent=T1), metadata=api.md(Role.SUPERVISOR)
    )
    return {
        s.name.rsplit("/", 1)[1]: (s.declared, s.agent_count, s.rule_count)
        for s in reply.routing_skills
    }


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        (pb.RoutingRule(required_skills=req(biling=3)), "rule.skills['biling']"),
        (
            pb.RoutingRule(
                required_skills=req(billing=3),
                relaxation_steps=[pb.RelaxationStep(after={"seconds": 60}, skills=req(senior=1))],
            ),
            "rule.steps[0].skills['senior']",
        ),
    ],
)
async def test_a_rule_with_an_unknown_skill_is_invalid_and_nothing_is_saved(
    api: Api, aredis: redis.asyncio.Redis, rule: pb.RoutingRule, field: str
) -> None:
    await api.create_agent("a1", {"billing": 3})  # billing is known: an agent holds it
    before = await snapshot(aredis)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await put_rule(api, "billing", rule)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    details = err.value.details() or ""
    assert details.startswith(f"{field}: unknown skill")
    assert "declare it first" in details
    assert await snapshot(aredis) == before  # no rule, no count, no audit entry


async def test_a_skill_is_known_through_an_agent_a_declaration_or_a_rule(api: Api) -> None:
    await api.create_agent("a1", {"billing": 3, "lang.en": 5})
    declared = await api.sup.CreateRoutingSkill(
        sup_pb.CreateRoutingSkillRequest(
            parent=T1, routing_skill_id="senior", routing_skill=pb.RoutingSkill(description="VIP")
        ),
        metadata=api.md(Role.SUPERVISOR),
    )
    assert declared.name == f"{T1}/routingSkills/senior" and declared.description == "VIP"
    assert declared.declared and declared.agent_count == 0 and declared.rule_count == 0
    step = pb.RelaxationStep(after={"seconds": 120}, skills=req(senior=1))
    await put_rule(
        api, "vip", pb.RoutingRule(required_skills=req(billing=4), relaxation_steps=[step])
    )
    assert await catalogue(api) == {
        "billing": (False, 1, 1),
        "lang.en": (False, 1, 0),
        "senior": (True, 0, 1),
    }
    # The last holder leaves: the rule still names billing, so it stays known and the rule
    # can be saved again as it is.
    await api.sup.DeleteAgent(
        sup_pb.DeleteAgentRequest(name=f"{T1}/agents/a1"), metadata=api.md(Role.SUPERVISOR)
    )
    assert await catalogue(api) == {"billing": (False, 0, 1), "senior": (True, 0, 1)}
    await put_rule(
        api, "vip", pb.RoutingRule(required_skills=req(billing=3), relaxation_steps=[step])
    )
    # The rule drops senior and billing: nothing names billing any more, senior stays declared.
    await api.declare("general")
    await put_rule(api, "vip", pb.RoutingRule(required_skills=req(general=1)))
    assert await catalogue(api) == {"general": (True, 0, 1), "senior": (True, 0, 0)}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await put_rule(api, "vip", pb.RoutingRule(required_skills=req(billing=1)))
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT  # billing is unknown again
    await api.sup.DeleteRoutingRule(
        sup_pb.DeleteRoutingRuleRequest(name=f"{T1}/routingRules/vip"),
        metadata=api.md(Role.SUPERVISOR),
    )
    assert await catalogue(api) == {"general": (True, 0, 0), "senior": (True, 0, 0)}


async def test_a_declaration_is_not_withdrawn_from_under_a_rule(api: Api) -> None:
    sup = api.md(Role.SUPERVISOR)
    await api.declare("senior")
    await put_rule(api, "vip", pb.RoutingRule(required_skills=req(senior=1)))
    name = f"{T1}/routingSkills/senior"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.sup.DeleteRoutingSkill(sup_pb.DeleteRoutingSkillRequest(name=name), metadata=sup)
    assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "named by 1 routing rule(s)" in (err.value.details() or "")
    await api.create_agent("a1", {"senior": 2})  # now an agent holds it: the rule is safe
    withdrawn = await api.sup.DeleteRoutingSkill(
        sup_pb.DeleteRoutingSkillRequest(name=name), metadata=sup
    )
    assert not withdrawn.declared and withdrawn.agent_count == 1 and withdrawn.rule_count == 1
    assert await catalogue(api) == {"senior": (False, 1, 1)}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.sup.DeleteRoutingSkill(sup_pb.DeleteRoutingSkillRequest(name=name), metadata=sup)
    assert err.value.code() is grpc.StatusCode.NOT_FOUND
    audit = await api.sup.ListAuditEvents(
        sup_pb.ListAuditEventsRequest(parent=T1, target=name), metadata=sup
    )
    assert [e.action for e in audit.audit_events] == ["DeleteRoutingSkill", "CreateRoutingSkill"]


@pytest.mark.parametrize(
    ("request_", "code", "field"),
    [
        (
            sup_pb.CreateRoutingSkillRequest(parent=T1, routing_skill_id="Senior Desk"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "routing_skill_id",
        ),
        (
            sup_pb.CreateRoutingSkillRequest(parent=T1, routing_skill_id=""),
            grpc.StatusCode.INVALID_ARGUMENT,
            "routing_skill_id",
        ),
        (
            sup_pb.CreateRoutingSkillRequest(
                parent=T1,
                routing_skill_id="senior",
                routing_skill=pb.RoutingSkill(description="x" * 513),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "routing_skill.description",
        ),
        (
            sup_pb.CreateRoutingSkillRequest(parent="tenants/", routing_skill_id="senior"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "parent",
        ),
    ],
)
async def test_bad_skill_declarations_are_invalid_and_nothing_is_saved(
    api: Api,
    aredis: redis.asyncio.Redis,
    request_: sup_pb.CreateRoutingSkillRequest,
    code: grpc.StatusCode,
    field: str,
) -> None:
    before = await snapshot(aredis)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.sup.CreateRoutingSkill(request_, metadata=api.md(Role.SUPERVISOR))
    assert err.value.code() is code
    assert (err.value.details() or "").startswith(field)
    assert await snapshot(aredis) == before


async def test_declaring_twice_is_already_exists_and_a_planner_may_only_read(api: Api) -> None:
    await api.declare("senior")
    request = sup_pb.CreateRoutingSkillRequest(parent=T1, routing_skill_id="senior")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.sup.CreateRoutingSkill(request, metadata=api.md(Role.SUPERVISOR))
    assert err.value.code() is grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await api.sup.CreateRoutingSkill(
            sup_pb.CreateRoutingSkillRequest(parent=T1, routing_skill_id="junior"),
            metadata=api.md(Role.PLANNER),
        )
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    listed = await api.sup.ListRoutingSkills(
        sup_pb.ListRoutingSkillsRequest(parent=T1), metadata=api.md(Role.PLANNER)
    )
    assert [s.name for s in listed.routing_skills] == [f"{T1}/routingSkills/senior"]


async def test_counts_stay_exact_under_concurrent_agent_and_rule_writes(
    api: Api, aredis: redis.asyncio.Redis
) -> None:
    """Forty agents created, re-skilled and some deleted, and rules rewritten, all at once:
    the catalogue's counts equal a recount from what is stored."""
    skills = ("billing", "tech", "sales", "senior")
    await api.declare(*skills)
    rng = random.Random(11)
    sup = api.md(Role.SUPERVISOR)

    async def agent_life(k: int) -> None:
        agent_id = f"a{k:02d}"
        await api.create_agent(agent_id, {s: 2 for s in rng.sample(skills, 2)})
        await api.sup.UpdateAgent(
            sup_pb.UpdateAgentRequest(
                agent=pb.Agent(
                    name=f"{T1}/agents/{agent_id}",
                    skills=[pb.Skill(skill=s, proficiency=3) for s in rng.sample(skills, 2)],
                ),
                update_mask={"paths": ["skills"]},
            ),
            metadata=sup,
        )
        if k % 3 == 0:
            await api.sup.DeleteAgent(
                sup_pb.DeleteAgentRequest(name=f"{T1}/agents/{agent_id}"), metadata=sup
            )

    async def rule_life(k: int) -> None:
        for _ in range(5):
            named = rng.sample(skills, 2)
            await put_rule(
                api, f"issue{k}", pb.RoutingRule(required_skills=req(**{named[0]: 1, named[1]: 2}))
            )

    await asyncio.gather(*(agent_life(k) for k in range(40)), *(rule_life(k) for k in range(4)))
    agents = await api.sup.ListAgents(
        sup_pb.ListAgentsRequest(parent=T1, page_size=100), metadata=sup
    )
    rules = await api.sup.ListRoutingRules(sup_pb.ListRoutingRulesRequest(parent=T1), metadata=sup)
    held = {s: sum(any(x.skill == s for x in a.skills) for a in agents.agents) for s in skills}
    named_by = {
        s: sum(any(r.skill == s for r in rule.required_skills) for rule in rules.routing_rules)
        for s in skills
    }
    assert len(agents.agents) == 40 - 14 and len(rules.routing_rules) == 4
    assert await catalogue(api) == {s: (True, held[s], named_by[s]) for s in skills}
    raw = await aredis.hgetall(keys.skill_agents(TenantId("t1")))
    assert all(int(v) > 0 for v in raw.values())  # no zero or negative count is left behind
