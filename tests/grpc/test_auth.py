"""Authentication and authorisation: one UNAUTHENTICATED message for every bad key, the
whole role x RPC table of ``router.auth.PERMISSIONS``, tenants and agent-bound keys."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
import redis.asyncio
from google.protobuf import descriptor_pool, message_factory

from router.auth import PERMISSIONS, Role
from router.pb.omniroute.v1 import admin_service_pb2 as admin_pb
from router.pb.omniroute.v1 import agent_service_pb2 as agent_pb
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import resources_pb2 as pb
from router.pb.omniroute.v1 import supervisor_service_pb2 as sup_pb
from router.server import SERVICE_NAMES
from tests.grpc.conftest import Api, Metadata, snapshot

T1 = "tenants/t1"
GHOST = "tenants/t1/agents/ghost"
OFFER = "tenants/t1/agents/ghost/offers/c1"


def requests(tenant: str = "t1") -> dict[str, Any]:
    """A well-formed request for every RPC (naming resources that mostly do not exist)."""
    t = f"tenants/{tenant}"
    ghost = f"{t}/agents/ghost"
    offer = f"{ghost}/offers/c1"
    return {
        "ContactService/SubmitContact": contact_pb.SubmitContactRequest(
            parent=t, contact=pb.Contact(channel=1, issue="nothing")
        ),
        "ContactService/CancelContact": contact_pb.CancelContactRequest(name=f"{t}/contacts/c1"),
        "ContactService/GetContact": contact_pb.GetContactRequest(name=f"{t}/contacts/c1"),
        "ContactService/WatchContact": contact_pb.WatchContactRequest(name=f"{t}/contacts/c1"),
        "ContactService/GetQueueStats": contact_pb.GetQueueStatsRequest(parent=t),
        "ContactService/EstimateWait": contact_pb.EstimateWaitRequest(
            parent=t, issue="billing", channel=1
        ),
        "ContactService/GetCustomer": contact_pb.GetCustomerRequest(name=f"{t}/customers/cu1"),
        "ContactService/LookupCustomer": contact_pb.LookupCustomerRequest(
            parent=t, identity=pb.Identity(kind=pb.IDENTITY_KIND_PHONE, value="+1")
        ),
        "ContactService/EscalateContact": contact_pb.EscalateContactRequest(
            name=f"{t}/contacts/c1", token=1
        ),
        "ContactService/RequestCallback": contact_pb.RequestCallbackRequest(
            name=f"{t}/contacts/c1"
        ),
        "AgentService/SignIn": agent_pb.SignInRequest(name=ghost),
        "AgentService/SignOut": agent_pb.SignOutRequest(name=ghost),
        "AgentService/SetAgentState": agent_pb.SetAgentStateRequest(
            name=ghost, state=pb.AGENT_STATE_AVAILABLE
        ),
        "AgentService/StreamOffers": agent_pb.StreamOffersRequest(name=ghost),
        "AgentService/AcceptOffer": agent_pb.AcceptOfferRequest(name=offer, token=1),
        "AgentService/DeclineOffer": agent_pb.DeclineOfferRequest(name=offer, token=1),
        "AgentService/CompleteContact": agent_pb.CompleteContactRequest(
            name=offer, token=1, outcome=pb.OUTCOME_RESOLVED
        ),
        "AgentService/Heartbeat": agent_pb.HeartbeatRequest(name=ghost),
        "SupervisorService/CreateAgent": sup_pb.CreateAgentRequest(parent=t, agent_id="x y"),
        "SupervisorService/GetAgent": sup_pb.GetAgentRequest(name=ghost),
        "SupervisorService/ListAgents": sup_pb.ListAgentsRequest(parent=t),
        "SupervisorService/UpdateAgent": sup_pb.UpdateAgentRequest(
            agent=pb.Agent(name=ghost, display_name="x"), update_mask={"paths": ["display_name"]}
        ),
        "SupervisorService/DeleteAgent": sup_pb.DeleteAgentRequest(name=ghost),
        "SupervisorService/SetSkill": sup_pb.SetSkillRequest(
            agent=ghost, skill=pb.Skill(skill="x", proficiency=1)
        ),
        "SupervisorService/RemoveSkill": sup_pb.RemoveSkillRequest(agent=ghost, skill="x"),
        "SupervisorService/CreateRoutingRule": sup_pb.CreateRoutingRuleRequest(parent=t, issue="x"),
        "SupervisorService/GetRoutingRule": sup_pb.GetRoutingRuleRequest(
            name=f"{t}/routingRules/x"
        ),
        "SupervisorService/ListRoutingRules": sup_pb.ListRoutingRulesRequest(parent=t),
        "SupervisorService/UpdateRoutingRule": sup_pb.UpdateRoutingRuleRequest(
            routing_rule=pb.RoutingRule(name=f"{t}/routingRules/x")
        ),
        "SupervisorService/DeleteRoutingRule": sup_pb.DeleteRoutingRuleRequest(
            name=f"{t}/routingRules/x"
        ),
        "SupervisorService/ListAuditEvents": sup_pb.ListAuditEventsRequest(parent=t),
        "AdminService/CreateApiKey": admin_pb.CreateApiKeyRequest(parent=t),
        "AdminService/ListApiKeys": admin_pb.ListApiKeysRequest(parent=t),
        "AdminService/RevokeApiKey": admin_pb.RevokeApiKeyRequest(name=f"{t}/apiKeys/nokey123"),
    }


def method_of(api: Api, rpc: str) -> Callable[..., Any]:
    """A callable for `rpc` ("Service/Method") on the api's channel, from the descriptors,
    so that RPCs added later are covered too."""
    service, method = rpc.split("/")
    desc = descriptor_pool.Default().FindServiceByName(f"omniroute.v1.{service}")
    m = desc.methods_by_name[method]
    output = message_factory.GetMessageClass(m.output_type)
    make = api.channel.unary_stream if m.server_streaming else api.channel.unary_unary
    return make(  # type: ignore[no-any-return]
        f"/omniroute.v1.{service}/{method}",
        request_serializer=lambda msg: msg.SerializeToString(),
        response_deserializer=output.FromString,
    )


def request_for(rpc: str, tenant: str = "t1") -> Any:
    """The prepared request of `rpc`, else an empty one naming the tenant where it can."""
    prepared = requests(tenant)
    if rpc in prepared:
        return prepared[rpc]
    service, method = rpc.split("/")
    desc = descriptor_pool.Default().FindServiceByName(f"omniroute.v1.{service}")
    request = message_factory.GetMessageClass(desc.methods_by_name[method].input_type)()
    fields = request.DESCRIPTOR.fields_by_name
    if "parent" in fields:
        request.parent = f"tenants/{tenant}"
    if "name" in fields:  # GetPlan -> tenants/{t}/plans/x
        noun = re.sub(r"^(Get|Watch|Delete|Update|Cancel|Revoke)", "", method)
        request.name = f"tenants/{tenant}/{noun[:1].lower()}{noun[1:]}s/x"
    return request


def streaming(rpc: str) -> bool:
    service, method = rpc.split("/")
    desc = descriptor_pool.Default().FindServiceByName(f"omniroute.v1.{service}")
    return bool(desc.methods_by_name[method].server_streaming)


async def status_of(api: Api, rpc: str, request: Any, metadata: Metadata) -> grpc.StatusCode:
    """The status a call ends with (OK when it succeeds; streams: their first message)."""
    try:
        call = method_of(api, rpc)(request, metadata=metadata)
        if streaming(rpc):
            await asyncio.wait_for(call.read(), 10)
            call.cancel()
        else:
            await call
    except (grpc.aio.AioRpcError, TimeoutError) as exc:
        if isinstance(exc, TimeoutError):
            call.cancel()
            return grpc.StatusCode.OK  # a stream that opened: admitted
        return exc.code()
    return grpc.StatusCode.OK


def test_permission_table_names_every_rpc_of_every_service() -> None:
    rpcs = set()
    for full_name in SERVICE_NAMES:
        service = descriptor_pool.Default().FindServiceByName(full_name)
        rpcs |= {f"{service.name}/{m.name}" for m in service.methods}
    assert rpcs == set(PERMISSIONS)
    assert set(requests()) <= rpcs


async def test_every_rpc_admits_its_roles_and_denies_the_others(api: Api) -> None:
    mismatches = []
    for rpc in sorted(PERMISSIONS):
        for role in Role:
            code = await status_of(api, rpc, request_for(rpc), api.md(role))
            allowed = role in PERMISSIONS[rpc]
            assert code != grpc.StatusCode.UNAUTHENTICATED, (rpc, role)
            if allowed == (code == grpc.StatusCode.PERMISSION_DENIED):
                mismatches.append((rpc, role.value, allowed, code.name))
    assert mismatches == []
    # every RPC has at least one role allowed and one denied
    for rpc, roles in PERMISSIONS.items():
        assert roles and set(Role) - roles, rpc


async def test_denied_calls_are_audited_and_change_nothing_else(
    api: Api, aredis: redis.asyncio.Redis
) -> None:
    before = await snapshot(aredis, skip=(":audit",))
    code = await status_of(
        api,
        "SupervisorService/CreateAgent",
        requests()["SupervisorService/CreateAgent"],
        api.md(Role.AGENT),
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert await snapshot(aredis, skip=(":audit",)) == before
    listing = await api.sup.ListAuditEvents(
        sup_pb.ListAuditEventsRequest(parent=T1, page_size=1), metadata=api.md(Role.SUPERVISOR)
    )
    assert listing.audit_events[0].action == "denied:SupervisorService/CreateAgent"


@pytest.mark.parametrize("rpc", sorted(PERMISSIONS))
async def test_another_tenants_names_are_permission_denied(
    api: Api, aredis: redis.asyncio.Redis, rpc: str
) -> None:
    role = sorted(PERMISSIONS[rpc])[0]
    before = await snapshot(aredis, skip=(":audit",))
    code = await status_of(api, rpc, request_for(rpc, "t2"), api.md(role, "t1"))
    assert code == grpc.StatusCode.PERMISSION_DENIED, rpc
    assert await snapshot(aredis, skip=(":audit",)) == before


async def test_another_tenants_message_names_the_tenant(api: Api) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await api.sup.GetAgent(
            sup_pb.GetAgentRequest(name="tenants/t2/agents/a1"), metadata=api.md(Role.SUPERVISOR)
        )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "t2" in (info.value.details() or "")


AGENT_BOUND: list[tuple[str, Callable[[Api, str], Awaitable[Any]]]] = [
    ("SignIn", lambda a, n: a.agents.SignIn(agent_pb.SignInRequest(name=n), metadata=a.bound())),
    ("SignOut", lambda a, n: a.agents.SignOut(agent_pb.SignOutRequest(name=n), metadata=a.bound())),
    (
        "SetAgentState",
        lambda a, n: a.agents.SetAgentState(
            agent_pb.SetAgentStateRequest(name=n, state=pb.AGENT_STATE_AVAILABLE),
            metadata=a.bound(),
        ),
    ),
    (
        "Heartbeat",
        lambda a, n: a.agents.Heartbeat(agent_pb.HeartbeatRequest(name=n), metadata=a.bound()),
    ),
    (
        "StreamOffers",
        lambda a, n: a.agents.StreamOffers(
            agent_pb.StreamOffersRequest(name=n), metadata=a.bound()
        ).read(),
    ),
    (
        "AcceptOffer",
        lambda a, n: a.agents.AcceptOffer(
            agent_pb.AcceptOfferRequest(name=f"{n}/offers/c1", token=1), metadata=a.bound()
        ),
    ),
    (
        "DeclineOffer",
        lambda a, n: a.agents.DeclineOffer(
            agent_pb.DeclineOfferRequest(name=f"{n}/offers/c1", token=1), metadata=a.bound()
        ),
    ),
    (
        "CompleteContact",
        lambda a, n: a.agents.CompleteContact(
            agent_pb.CompleteContactRequest(
                name=f"{n}/offers/c1", token=1, outcome=pb.OUTCOME_RESOLVED
            ),
            metadata=a.bound(),
        ),
    ),
]


@pytest.mark.parametrize(("rpc", "call"), AGENT_BOUND, ids=[b[0] for b in AGENT_BOUND])
async def test_agent_bound_key_may_not_act_for_another_agent(
    api: Api, aredis: redis.asyncio.Redis, rpc: str, call: Callable[[Api, str], Awaitable[Any]]
) -> None:
    await api.create_agent("a1", {"billing": 1})
    await api.create_agent("a2", {"billing": 1})
    before = await snapshot(aredis, skip=(":audit",))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(api, "tenants/t1/agents/a2")
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "a1" in (info.value.details() or "")
    assert await snapshot(aredis, skip=(":audit",)) == before


async def test_agent_bound_key_acts_for_its_own_agent(api: Api) -> None:
    await api.create_agent("a1", {"billing": 1})
    agent = await api.agents.SignIn(
        agent_pb.SignInRequest(name="tenants/t1/agents/a1"), metadata=api.bound()
    )
    assert agent.state == pb.AGENT_STATE_AVAILABLE


async def bad_keys(api: Api) -> dict[str, Metadata]:
    """Metadata with a missing, malformed, unknown and revoked key."""
    good = api.keys[("t1", Role.SUPERVISOR)]
    tenant, key_id = good.split("_")[1:3]
    created = await api.admin.CreateApiKey(
        admin_pb.CreateApiKeyRequest(parent=T1, api_key=pb.ApiKey(role=pb.ROLE_SUPERVISOR)),
        metadata=api.md(Role.ADMIN),
    )
    await api.admin.RevokeApiKey(
        admin_pb.RevokeApiKeyRequest(name=created.api_key.name), metadata=api.md(Role.ADMIN)
    )
    from router.auth import new_secret

    return {
        "missing": (),
        "empty bearer": (("authorization", "Bearer "),),
        "malformed": (("authorization", "Bearer not-a-key"),),
        "bad checksum": (
            ("authorization", f"Bearer {good[:-1]}{'0' if good[-1] != '0' else '1'}"),
        ),
        "wrong scheme": (("authorization", f"Basic {good}"),),
        "unknown": (("authorization", f"Bearer {new_secret(tenant, key_id)}"),),  # type: ignore[arg-type]
        "unknown tenant": (("x-api-key", new_secret("t9", "abcdefgh")),),  # type: ignore[arg-type]
        "revoked": (("authorization", f"Bearer {created.secret}"),),
    }


async def test_missing_malformed_unknown_and_revoked_keys_get_one_message(
    api: Api, aredis: redis.asyncio.Redis
) -> None:
    keys = await bad_keys(api)
    before = await snapshot(aredis)
    messages = set()
    for what, metadata in keys.items():
        for rpc in ("SupervisorService/ListAgents", "ContactService/SubmitContact"):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await method_of(api, rpc)(request_for(rpc), metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, what
            messages.add(info.value.details())
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await api.agents.StreamOffers(
                agent_pb.StreamOffersRequest(name="tenants/t1/agents/a1"), metadata=metadata
            ).read()
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, what
        messages.add(info.value.details())
    assert messages == {"missing, unknown, revoked or expired API key"}
    assert await snapshot(aredis) == before


async def test_a_revoked_key_stops_working_at_once(api: Api) -> None:
    created = await api.admin.CreateApiKey(
        admin_pb.CreateApiKeyRequest(parent=T1, api_key=pb.ApiKey(role=pb.ROLE_PLANNER)),
        metadata=api.md(Role.ADMIN),
    )
    md = (("authorization", f"Bearer {created.secret}"),)
    await api.contacts.GetQueueStats(contact_pb.GetQueueStatsRequest(parent=T1), metadata=md)
    await api.admin.RevokeApiKey(
        admin_pb.RevokeApiKeyRequest(name=created.api_key.name), metadata=api.md(Role.ADMIN)
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await api.contacts.GetQueueStats(contact_pb.GetQueueStatsRequest(parent=T1), metadata=md)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_key_never_appears_in_redis_or_in_a_log(
    api: Api, aredis: redis.asyncio.Redis
) -> None:
    """Keys are stored as digests and never logged: after a key is created, used (allowed
    and denied), listed and revoked, neither its secret nor its secret part shows in any
    Redis key or value, nor in any log line the service wrote meanwhile."""
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        made = await api.admin.CreateApiKey(
            admin_pb.CreateApiKeyRequest(
                parent="tenants/t1",
                api_key=pb.ApiKey(role=pb.ROLE_PLATFORM, display_name="leak probe"),
            ),
            metadata=api.md(Role.ADMIN),
        )
        secret = made.secret
        assert secret.startswith("omr_t1_")
        md = (("authorization", f"Bearer {secret}"),)
        with pytest.raises(grpc.aio.AioRpcError):  # allowed role, no such contact
            await api.contacts.GetContact(
                contact_pb.GetContactRequest(name="tenants/t1/contacts/nope"), metadata=md
            )
        with pytest.raises(grpc.aio.AioRpcError):  # a role it lacks: denied and audited
            await api.sup.ListAgents(sup_pb.ListAgentsRequest(parent="tenants/t1"), metadata=md)
        await api.admin.ListApiKeys(
            admin_pb.ListApiKeysRequest(parent="tenants/t1"), metadata=api.md(Role.ADMIN)
        )
        await api.admin.RevokeApiKey(
            admin_pb.RevokeApiKeyRequest(name=made.api_key.name), metadata=api.md(Role.ADMIN)
        )
        with pytest.raises(grpc.aio.AioRpcError):
            await api.contacts.GetContact(
                contact_pb.GetContactRequest(name="tenants/t1/contacts/nope"), metadata=md
            )
    secret_part = secret.rsplit("_", 1)[-1]
    assert len(secret_part) >= 20
    needles = (secret, secret_part)
    raw = redis.asyncio.Redis(connection_pool=aredis.connection_pool, decode_responses=False)
    async for key in aredis.scan_iter("*"):
        assert not any(n in key for n in needles), key
        value = await raw.dump(key)
        assert value is not None
        assert not any(n.encode() in value for n in needles), key
    assert logs, "the calls above must have logged something"
    for line in logs:
        assert not any(n in repr(line) for n in needles), line
