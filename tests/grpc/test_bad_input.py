"""Bad input gets a clear status naming the field, and changes nothing in Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
import redis.asyncio

from router.auth import Role
from router.pb.omniroute.v1 import admin_service_pb2 as admin_pb
from router.pb.omniroute.v1 import agent_service_pb2 as agent_pb
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import planning_service_pb2 as plan_pb
from router.pb.omniroute.v1 import resources_pb2 as pb
from router.pb.omniroute.v1 import supervisor_service_pb2 as sup_pb
from tests.grpc.conftest import Api, ApiFactory, snapshot

INVALID = grpc.StatusCode.INVALID_ARGUMENT
A1 = "tenants/t1/agents/a1"


@pytest.fixture
async def floor(api: Api) -> Api:
    """A rule, two signed-out agents and one waiting contact of a known customer."""
    await api.create_rule("billing", {"billing": 1})
    await api.create_agent("a1", {"billing": 3})
    await api.create_agent("a2", {"billing": 2})
    await api.submit("billing", phone="+15550001", request_id="r1")
    return api


async def refused(
    aredis: redis.asyncio.Redis,
    call: Awaitable[Any],
    code: grpc.StatusCode,
    *names: str,
    skip: tuple[str, ...] = (),
) -> str:
    """Run `call`, which must fail with `code` and a message naming each of `names`,
    and leave every key in Redis as it was (except keys containing `skip`)."""
    before = await snapshot(aredis, skip=skip)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    message = info.value.details() or ""
    for name in names:
        assert name in message, f"{name!r} not in {message!r}"
    await asyncio.sleep(0.05)  # let any stray routing pass run before comparing
    assert await snapshot(aredis, skip=skip) == before, "the refused call changed state"
    return message


def submit(api: Api, contact: pb.Contact | None, request_id: str = "") -> Awaitable[Any]:
    return api.contacts.SubmitContact(
        contact_pb.SubmitContactRequest(
            parent="tenants/t1", contact=contact, request_id=request_id
        ),
        metadata=api.md(Role.PLATFORM),
    )


# --- contacts ---------------------------------------------------------------------------


async def test_contact_without_issue_is_refused_naming_contact_issue(
    floor: Api, aredis: redis.asyncio.Redis
) -> None:
    call = submit(floor, pb.Contact(channel=pb.CHANNEL_VOICE))
    await refused(aredis, call, INVALID, "contact.issue")


@pytest.mark.parametrize("channel", [0, 99])
async def test_contact_with_unknown_channel_is_refused_naming_contact_channel(
    floor: Api, aredis: redis.asyncio.Redis, channel: int
) -> None:
    call = submit(floor, pb.Contact(channel=channel, issue="billing"))  # type: ignore[arg-type]
    await refused(aredis, call, INVALID, "contact.channel")


@pytest.mark.parametrize("priority", [-1, 10])
async def test_contact_priority_outside_0_to_9_is_refused(
    floor: Api, aredis: redis.asyncio.Redis, priority: int
) -> None:
    call = submit(floor, pb.Contact(channel=1, issue="billing", priority=priority))
    await refused(aredis, call, INVALID, "contact.priority", str(priority))


@pytest.mark.parametrize("priority", [-1, 10])
async def test_wait_estimate_priority_outside_0_to_9_is_refused(
    floor: Api, aredis: redis.asyncio.Redis, priority: int
) -> None:
    call = floor.contacts.EstimateWait(
        contact_pb.EstimateWaitRequest(
            parent="tenants/t1", issue="billing", channel=1, priority=priority
        ),
        metadata=floor.md(Role.PLATFORM),
    )
    await refused(aredis, call, INVALID, "priority")


async def test_contact_with_33_attributes_is_refused(
    floor: Api, aredis: redis.asyncio.Redis
) -> None:
    attributes = {f"k{i}": "v" for i in range(33)}
    call = submit(floor, pb.Contact(channel=1, issue="billing", attributes=attributes))
    await refused(aredis, call, INVALID, "contact.attributes", "32")


async def test_contact_with_32_attributes_is_accepted(floor: Api) -> None:
    attributes = {f"k{i}": "v" for i in range(32)}
    contact = await submit(floor, pb.Contact(channel=1, issue="billing", attributes=attributes))
    assert dict(contact.attributes) == attributes


async def test_contact_with_a_2_kib_attribute_value_is_refused(
    floor: Api, aredis: redis.asyncio.Redis
) -> None:
    call = submit(floor, pb.Contact(channel=1, issue="billing", attributes={"crm": "x" * 2048}))
    await refused(aredis, call, INVALID, "contact.attributes['crm']", "1024")


async def test_contact_without_contact_message_is_refused(
    floor: Api, aredis: redis.asyncio.Redis
) -> None:
    await refused(aredis, submit(floor, None), INVALID, "contact")


async def test_reused_request_id_with_another_payload_is_already_exists(
    floor: Api, aredis: redis.asyncio.Redis
) -> None:
    other = pb.Contact(channel=pb.CHANNEL_CHAT, issue="billing")
    other.identities.append(pb.Identity(kind=pb.IDENTITY_KIND_PHONE, value="+15559999"))
    await refused(aredis, submit(floor, other, "r1"), grpc.StatusCode.ALREADY_EXISTS, "request_id")


async def test_contact_for_an_issue_without_rule_is_failed_precondition(
    floor: Api, aredis: redis.asyncio.Redis
) -> None:
    call = submit(floor, pb.Contact(channel=1, issue="router_broken"))
    await refused(aredis, call, grpc.StatusCode.FAILED_PRECONDITION, "contact.issue")


async def test_lookup_customer_without_identity_is_refused(
    floor: Api, aredis: redis.asyncio.Redis
) -> None:
    call = floor.contacts.LookupCustomer(
        contact_pb.LookupCustomerRequest(parent="tenants/t1"), metadata=floor.md(Role.PLATFORM)
    )
    await refused(aredis, call, INVALID, "identity")


# --- proficiency ------------------------------------------------------------------------


def agent_with_skill(level: int) -> pb.Agent:
    return pb.Agent(
        skills=[pb.Skill(skill="billing", proficiency=level)],
        capacities=[pb.ChannelCapacity(channel=pb.CHANNEL_VOICE, max_contacts=1)],
    )


@pytest.mark.parametrize("level", [0, 6, 9])
async def test_create_agent_with_proficiency_outside_1_to_5_is_refused(
    floor: Api, aredis: redis.asyncio.Redis, level: int
) -> None:
    call = floor.sup.CreateAgent(
        sup_pb.CreateAgentRequest(
            parent="tenants/t1", agent_id="a9", agent=agent_with_skill(level)
        ),
        metadata=floor.md(Role.SUPERVISOR),
    )
    await refused(aredis, call, INVALID, "agent.skills[0].proficiency", str(level))


@pytest.mark.parametrize("level", [0, 6, 9])
async def test_set_skill_with_proficiency_outside_1_to_5_is_refused(
    floor: Api, aredis: redis.asyncio.Redis, level: int
) -> None:
    call = floor.sup.SetSkill(
        sup_pb.SetSkillRequest(agent=A1, skill=pb.Skill(skill="billing", proficiency=level)),
        metadata=floor.md(Role.SUPERVISOR),
    )
    await refused(aredis, call, INVALID, "skill.proficiency", str(level))


@pytest.mark.parametrize("level", [0, 6, 9])
async def test_rule_with_minimum_proficiency_outside_1_to_5_is_refused(
    floor: Api, aredis: redis.asyncio.Redis, level: int
) -> None:
    rule = pb.RoutingRule(required_skills=[pb.SkillRequirement(skill="tv", min_proficiency=level)])
    call = floor.sup.CreateRoutingRule(
        sup_pb.CreateRoutingRuleRequest(parent="tenants/t1", issue="tv", routing_rule=rule),
        metadata=floor.md(Role.SUPERVISOR),
    )
    await refused(aredis, call, INVALID, "routing_rule.required_skills[0].min_proficiency")


async def test_rule_step_that_changes_nothing_is_refused_with_its_index(
    floor: Api, aredis: redis.asyncio.Redis
) -> None:
    rule = pb.RoutingRule(
        required_skills=[pb.SkillRequirement(skill="tv", min_proficiency=3)],
        relaxation_steps=[
            pb.RelaxationStep(
                after={"seconds": 30}, skills=[pb.SkillRequirement(skill="tv", min_proficiency=2)]
            ),
            pb.RelaxationStep(
                after={"seconds": 60}, skills=[pb.SkillRequirement(skill="tv", min_proficiency=2)]
            ),
        ],
    )
    call = floor.sup.CreateRoutingRule(
        sup_pb.CreateRoutingRuleRequest(parent="tenants/t1", issue="tv", routing_rule=rule),
        metadata=floor.md(Role.SUPERVISOR),
    )
    await refused(aredis, call, INVALID, "rule.steps[1]")


# --- names ------------------------------------------------------------------------------

BAD_AGENT_NAMES = [
    "tenants/UPPER/agents/a1",
    "tenants/t1/agents/has space",
    "tenants/t1/agents",
    "tenants/t1/agents/",
    "tenants/t1",
    "agents/a1",
    "",
    "tenants/t1/agents/a1/extra",
    "tenants/t1/contacts/a1",
]


@pytest.mark.parametrize("name", BAD_AGENT_NAMES)
async def test_malformed_agent_name_is_refused_naming_the_field(
    floor: Api, aredis: redis.asyncio.Redis, name: str
) -> None:
    get = floor.sup.GetAgent(sup_pb.GetAgentRequest(name=name), metadata=floor.md(Role.SUPERVISOR))
    await refused(aredis, get, INVALID, "name")
    sign_in = floor.agents.SignIn(agent_pb.SignInRequest(name=name), metadata=floor.md(Role.AGENT))
    await refused(aredis, sign_in, INVALID, "name")
    skill = floor.sup.SetSkill(
        sup_pb.SetSkillRequest(agent=name, skill=pb.Skill(skill="billing", proficiency=2)),
        metadata=floor.md(Role.SUPERVISOR),
    )
    await refused(aredis, skill, INVALID, "agent")


@pytest.mark.parametrize("parent", ["tenants/UPPER", "tenants", "t1", "", "tenants/t1/x"])
async def test_malformed_parent_is_refused_naming_parent(
    floor: Api, aredis: redis.asyncio.Redis, parent: str
) -> None:
    call = floor.contacts.SubmitContact(
        contact_pb.SubmitContactRequest(parent=parent, contact=pb.Contact(channel=1, issue="b")),
        metadata=floor.md(Role.PLATFORM),
    )
    await refused(aredis, call, INVALID, "parent")


@pytest.mark.parametrize("agent_id", ["Has Space", "UPPER", "", "a/b", "x" * 64])
async def test_malformed_agent_id_is_refused_naming_agent_id(
    floor: Api, aredis: redis.asyncio.Redis, agent_id: str
) -> None:
    call = floor.sup.CreateAgent(
        sup_pb.CreateAgentRequest(
            parent="tenants/t1", agent_id=agent_id, agent=agent_with_skill(2)
        ),
        metadata=floor.md(Role.SUPERVISOR),
    )
    await refused(aredis, call, INVALID, "agent_id")


@pytest.mark.parametrize(
    "name",
    [
        "tenants/t1/agents/a1/offers/",
        "tenants/t1/agents/a1/offers/Bad Id",
        "tenants/t1/agents/a1",
        "tenants/t1/agents/A1/offers/c1",
        "tenants/T1/agents/a1/offers/c1",
    ],
)
async def test_malformed_offer_name_is_refused_naming_name(
    floor: Api, aredis: redis.asyncio.Redis, name: str
) -> None:
    call = floor.agents.AcceptOffer(
        agent_pb.AcceptOfferRequest(name=name, token=1), metadata=floor.md(Role.AGENT)
    )
    await refused(aredis, call, INVALID, "name")


async def test_accept_without_token_is_refused_naming_token(
    floor: Api, aredis: redis.asyncio.Redis
) -> None:
    call = floor.agents.AcceptOffer(
        agent_pb.AcceptOfferRequest(name=f"{A1}/offers/c1"), metadata=floor.md(Role.AGENT)
    )
    await refused(aredis, call, INVALID, "token")


async def test_complete_without_outcome_is_refused_naming_outcome(
    floor: Api, aredis: redis.asyncio.Redis
) -> None:
    call = floor.agents.CompleteContact(
        agent_pb.CompleteContactRequest(name=f"{A1}/offers/c1", token=1),
        metadata=floor.md(Role.AGENT),
    )
    await refused(aredis, call, INVALID, "outcome")


# --- missing messages ---------------------------------------------------------------------

MISSING: list[tuple[str, Callable[[Api], Awaitable[Any]], str]] = [
    (
        "CreateAgent",
        lambda a: a.sup.CreateAgent(
            sup_pb.CreateAgentRequest(parent="tenants/t1", agent_id="a9"),
            metadata=a.md(Role.SUPERVISOR),
        ),
        "agent",
    ),
    (
        "UpdateAgent",
        lambda a: a.sup.UpdateAgent(sup_pb.UpdateAgentRequest(), metadata=a.md(Role.SUPERVISOR)),
        "agent",
    ),
    (
        "SetSkill",
        lambda a: a.sup.SetSkill(sup_pb.SetSkillRequest(agent=A1), metadata=a.md(Role.SUPERVISOR)),
        "skill",
    ),
    (
        "CreateRoutingRule",
        lambda a: a.sup.CreateRoutingRule(
            sup_pb.CreateRoutingRuleRequest(parent="tenants/t1", issue="tv"),
            metadata=a.md(Role.SUPERVISOR),
        ),
        "routing_rule",
    ),
    (
        "UpdateRoutingRule",
        lambda a: a.sup.UpdateRoutingRule(
            sup_pb.UpdateRoutingRuleRequest(), metadata=a.md(Role.SUPERVISOR)
        ),
        "routing_rule",
    ),
    (
        "CreateApiKey",
        lambda a: a.admin.CreateApiKey(
            admin_pb.CreateApiKeyRequest(parent="tenants/t1"), metadata=a.md(Role.ADMIN)
        ),
        "api_key",
    ),
    (
        "UpdateAgent without mask",
        lambda a: a.sup.UpdateAgent(
            sup_pb.UpdateAgentRequest(agent=pb.Agent(name=A1)), metadata=a.md(Role.SUPERVISOR)
        ),
        "update_mask",
    ),
]


@pytest.mark.parametrize(("what", "call", "field"), MISSING, ids=[m[0] for m in MISSING])
async def test_missing_required_message_is_refused_naming_it(
    floor: Api,
    aredis: redis.asyncio.Redis,
    what: str,
    call: Callable[[Api], Awaitable[Any]],
    field: str,
) -> None:
    await refused(aredis, call(floor), INVALID, field)


# --- NOT_FOUND ----------------------------------------------------------------------------

NOT_FOUND: list[tuple[str, Callable[[Api], Awaitable[Any]], str]] = [
    (
        "GetAgent",
        lambda a: a.sup.GetAgent(
            sup_pb.GetAgentRequest(name="tenants/t1/agents/ghost"), metadata=a.md(Role.SUPERVISOR)
        ),
        "ghost",
    ),
    (
        "SignIn",
        lambda a: a.agents.SignIn(
            agent_pb.SignInRequest(name="tenants/t1/agents/ghost"), metadata=a.md(Role.AGENT)
        ),
        "ghost",
    ),
    (
        "SetSkill",
        lambda a: a.sup.SetSkill(
            sup_pb.SetSkillRequest(
                agent="tenants/t1/agents/ghost", skill=pb.Skill(skill="x", proficiency=1)
            ),
            metadata=a.md(Role.SUPERVISOR),
        ),
        "ghost",
    ),
    (
        "RemoveSkill missing skill",
        lambda a: a.sup.RemoveSkill(
            sup_pb.RemoveSkillRequest(agent=A1, skill="cooking"), metadata=a.md(Role.SUPERVISOR)
        ),
        "cooking",
    ),
    (
        "GetContact",
        lambda a: a.contacts.GetContact(
            contact_pb.GetContactRequest(name="tenants/t1/contacts/ghost"),
            metadata=a.md(Role.PLATFORM),
        ),
        "ghost",
    ),
    (
        "CancelContact",
        lambda a: a.contacts.CancelContact(
            contact_pb.CancelContactRequest(name="tenants/t1/contacts/ghost"),
            metadata=a.md(Role.PLATFORM),
        ),
        "ghost",
    ),
    (
        "AcceptOffer",
        lambda a: a.agents.AcceptOffer(
            agent_pb.AcceptOfferRequest(name=f"{A1}/offers/ghost", token=1),
            metadata=a.md(Role.AGENT),
        ),
        "ghost",
    ),
    (
        "GetRoutingRule",
        lambda a: a.sup.GetRoutingRule(
            sup_pb.GetRoutingRuleRequest(name="tenants/t1/routingRules/ghost"),
            metadata=a.md(Role.SUPERVISOR),
        ),
        "ghost",
    ),
    (
        "DeleteRoutingRule",
        lambda a: a.sup.DeleteRoutingRule(
            sup_pb.DeleteRoutingRuleRequest(name="tenants/t1/routingRules/ghost"),
            metadata=a.md(Role.SUPERVISOR),
        ),
        "ghost",
    ),
    (
        "GetCustomer",
        lambda a: a.contacts.GetCustomer(
            contact_pb.GetCustomerRequest(name="tenants/t1/customers/ghost"),
            metadata=a.md(Role.PLATFORM),
        ),
        "ghost",
    ),
    (
        "LookupCustomer",
        lambda a: a.contacts.LookupCustomer(
            contact_pb.LookupCustomerRequest(
                parent="tenants/t1",
                identity=pb.Identity(kind=pb.IDENTITY_KIND_PHONE, value="+10000000"),
            ),
            metadata=a.md(Role.PLATFORM),
        ),
        "customer",
    ),
    (
        "RevokeApiKey",
        lambda a: a.admin.RevokeApiKey(
            admin_pb.RevokeApiKeyRequest(name="tenants/t1/apiKeys/ghost"),
            metadata=a.md(Role.ADMIN),
        ),
        "ghost",
    ),
]


@pytest.mark.parametrize(("what", "call", "named"), NOT_FOUND, ids=[n[0] for n in NOT_FOUND])
async def test_unknown_resource_is_not_found(
    floor: Api,
    aredis: redis.asyncio.Redis,
    what: str,
    call: Callable[[Api], Awaitable[Any]],
    named: str,
) -> None:
    await refused(aredis, call(floor), grpc.StatusCode.NOT_FOUND, named)


async def test_streaming_offers_of_an_unknown_agent_is_not_found(
    floor: Api, aredis: redis.asyncio.Redis
) -> None:
    async def first_event() -> Any:
        call = floor.agents.StreamOffers(
            agent_pb.StreamOffersRequest(name="tenants/t1/agents/ghost"),
            metadata=floor.md(Role.AGENT),
        )
        return await call.read()

    await refused(aredis, first_event(), grpc.StatusCode.NOT_FOUND, "ghost")


# --- ALREADY_EXISTS -------------------------------------------------------------------------


async def test_duplicate_agent_id_is_already_exists(
    floor: Api, aredis: redis.asyncio.Redis
) -> None:
    call = floor.sup.CreateAgent(
        sup_pb.CreateAgentRequest(parent="tenants/t1", agent_id="a1", agent=agent_with_skill(2)),
        metadata=floor.md(Role.SUPERVISOR),
    )
    await refused(aredis, call, grpc.StatusCode.ALREADY_EXISTS, "a1")


async def test_duplicate_rule_is_already_exists(floor: Api, aredis: redis.asyncio.Redis) -> None:
    rule = pb.RoutingRule(required_skills=[pb.SkillRequirement(skill="other", min_proficiency=4)])
    call = floor.sup.CreateRoutingRule(
        sup_pb.CreateRoutingRuleRequest(parent="tenants/t1", issue="billing", routing_rule=rule),
        metadata=floor.md(Role.SUPERVISOR),
    )
    await refused(aredis, call, grpc.StatusCode.ALREADY_EXISTS, "billing")


# --- FAILED_PRECONDITION --------------------------------------------------------------------


async def offered(api: Api, agent: str = "a1", *, submit: bool = False) -> tuple[pb.Offer, Any]:
    """Sign `agent` in (the floor's waiting contact, or one submitted now, goes to it)
    and return the offer it streams, with the open stream."""
    await api.sign_in(agent)
    stream = api.stream(agent)
    if submit:
        await api.submit("billing", pb.CHANNEL_CHAT)
    return await stream.next_offer(), stream


async def accept_call(api: Api, name: str, token: int) -> pb.Contact:
    return await api.agents.AcceptOffer(
        agent_pb.AcceptOfferRequest(name=name, token=token), metadata=api.md(Role.AGENT)
    )


async def test_accepting_an_expired_offer_is_failed_precondition(
    make_api: ApiFactory, aredis: redis.asyncio.Redis
) -> None:
    # No sweeper pass during the test: the offer stays offered past its deadline.
    api = await make_api(offer_timeout_s=0.2, sweep_s=3600.0)
    await api.create_rule("billing", {"billing": 1})
    await api.create_agent("a1", {"billing": 3})
    offer, stream = await offered(api, submit=True)
    contact_key = f"omr:{{t1}}:contact:{offer.contact.name.rsplit('/', 1)[1]}"
    deadline_ms = int(await aredis.hget(contact_key, "deadline_ms") or 0)
    while True:  # wait on Redis's clock, the one deadlines are measured on
        seconds, micros = await aredis.time()
        if seconds * 1000 + micros // 1000 > deadline_ms:
            break
        await asyncio.sleep(0.05)
    await refused(
        aredis,
        accept_call(api, offer.name, offer.token),
        grpc.StatusCode.FAILED_PRECONDITION,
        "expired",
    )
    await stream.close()


async def test_accepting_an_offer_that_was_never_yours_is_failed_precondition(
    floor: Api, aredis: redis.asyncio.Redis
) -> None:
    offer, stream = await offered(floor, "a1")
    contact_id = offer.contact.name.rsplit("/", 1)[1]
    call = accept_call(floor, f"tenants/t1/agents/a2/offers/{contact_id}", offer.token)
    await refused(aredis, call, grpc.StatusCode.FAILED_PRECONDITION, contact_id)
    await stream.close()


async def test_accepting_with_a_stale_token_is_failed_precondition(
    floor: Api, aredis: redis.asyncio.Redis
) -> None:
    offer, stream = await offered(floor, "a1")
    await floor.agents.DeclineOffer(
        agent_pb.DeclineOfferRequest(name=offer.name, token=offer.token),
        metadata=floor.md(Role.AGENT),
    )
    again = await stream.next_offer()  # a1 is the only one signed in: it comes back
    assert again.token == offer.token + 1
    call = accept_call(floor, offer.name, offer.token)
    message = await refused(aredis, call, grpc.StatusCode.FAILED_PRECONDITION, "token")
    assert str(offer.token) in message
    await stream.close()


async def test_completing_before_accepting_is_failed_precondition(
    floor: Api, aredis: redis.asyncio.Redis
) -> None:
    offer, stream = await offered(floor, "a1")
    call = floor.agents.CompleteContact(
        agent_pb.CompleteContactRequest(
            name=offer.name, token=offer.token, outcome=pb.OUTCOME_RESOLVED
        ),
        metadata=floor.md(Role.AGENT),
    )
    await refused(aredis, call, grpc.StatusCode.FAILED_PRECONDITION, "not accepted")
    await stream.close()


async def test_signing_out_while_holding_an_accepted_contact_is_failed_precondition(
    floor: Api, aredis: redis.asyncio.Redis
) -> None:
    offer, stream = await offered(floor, "a1")
    await accept_call(floor, offer.name, offer.token)
    await stream.close()
    call = floor.agents.SignOut(agent_pb.SignOutRequest(name=A1), metadata=floor.md(Role.AGENT))
    await refused(aredis, call, grpc.StatusCode.FAILED_PRECONDITION, "a1", "complete")


async def test_repeated_accept_returns_the_same_answer(floor: Api) -> None:
    offer, stream = await offered(floor, "a1")
    first = await accept_call(floor, offer.name, offer.token)
    second = await accept_call(floor, offer.name, offer.token)
    assert first == second
    assert first.state == pb.CONTACT_STATE_ASSIGNED
    await stream.close()


# --- bytes that do not parse (found by tests/grpc/test_fuzz.py) -----------------------------

UNPARSABLE = {
    "invalid UTF-8 in a string": b"\x0a\x02\xc3\x28",  # parent = bytes that are not UTF-8
    "truncated field": b"\x0a\x05tena",
    "field number 0": b"\x02\x01a",
}


@pytest.mark.parametrize("wire", UNPARSABLE.values(), ids=UNPARSABLE)
async def test_request_bytes_that_do_not_parse_are_invalid_argument(
    floor: Api, aredis: redis.asyncio.Redis, wire: bytes
) -> None:
    unary = floor.channel.unary_unary("/omniroute.v1.ContactService/SubmitContact")
    call = unary(wire, metadata=floor.md(Role.PLATFORM))
    await refused(aredis, call, INVALID, "request", "omniroute.v1.SubmitContactRequest")
    stream = floor.channel.unary_stream("/omniroute.v1.AgentService/StreamOffers")
    await refused(aredis, stream(wire, metadata=floor.md(Role.AGENT)).read(), INVALID, "request")


async def test_unparsable_bytes_with_a_bad_key_are_unauthenticated_first(
    floor: Api, aredis: redis.asyncio.Redis
) -> None:
    unary = floor.channel.unary_unary("/omniroute.v1.ContactService/SubmitContact")
    call = unary(UNPARSABLE["truncated field"], metadata=(("authorization", "Bearer nope"),))
    await refused(aredis, call, grpc.StatusCode.UNAUTHENTICATED)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [("name: x\n\x1b", "#x001b"), ("[" * 5000, "nested too deeply")],
    ids=["control character", "deep nesting"],
)
async def test_a_plan_spec_yaml_cannot_read_is_invalid_argument(
    floor: Api, aredis: redis.asyncio.Redis, spec: str, problem: str
) -> None:
    create = floor.channel.unary_unary(
        "/omniroute.v1.PlanningService/CreatePlan",
        request_serializer=plan_pb.CreatePlanRequest.SerializeToString,
    )
    call = create(
        plan_pb.CreatePlanRequest(parent="tenants/t1", plan_spec=spec),
        metadata=floor.md(Role.PLANNER),
    )
    await refused(aredis, call, INVALID, "plan_spec", problem)
