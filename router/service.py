"""gRPC servicers: translate requests to use cases and answers back, nothing more.

Each method parses its request with ``router.convert`` (InvalidArgument names the field),
checks that the request's tenant and agent are the API key's (``router.auth``), calls the
engine or supervision use case, and converts the answer. Domain errors become statuses in
``translate_errors``.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from grpc import StatusCode

from queues.cluster import STORE_DOWN
from router import convert
from router.auth import Principal, check_agent, check_tenant
from router.customers import merge_customers, routing_explanation
from router.domain import AgentId, AgentState, ContactId, TenantId
from router.engine import Engine, OfferView, Reconciling
from router.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    RoutingError,
    Unauthenticated,
    Unavailable,
)
from router.figures import estimate_wait, queue_figures
from router.live_figures import watch_figures
from router.pb.omniroute.v1 import admin_service_pb2 as admin_pb
from router.pb.omniroute.v1 import admin_service_pb2_grpc as admin_grpc
from router.pb.omniroute.v1 import agent_service_pb2 as agent_pb
from router.pb.omniroute.v1 import agent_service_pb2_grpc as agent_grpc
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import contact_service_pb2_grpc as contact_grpc
from router.pb.omniroute.v1 import resources_pb2 as pb
from router.pb.omniroute.v1 import supervisor_service_pb2 as sup_pb
from router.pb.omniroute.v1 import supervisor_service_pb2_grpc as sup_grpc
from router.principal import current_principal
from router.rules import check_name
from router.supervision import Supervision

STATUS: dict[type[RoutingError], StatusCode] = {
    InvalidArgument: StatusCode.INVALID_ARGUMENT,
    NotFound: StatusCode.NOT_FOUND,
    AlreadyExists: StatusCode.ALREADY_EXISTS,
    Conflict: StatusCode.FAILED_PRECONDITION,
    Unauthenticated: StatusCode.UNAUTHENTICATED,
    PermissionDenied: StatusCode.PERMISSION_DENIED,
    Unavailable: StatusCode.UNAVAILABLE,
    ResourceExhausted: StatusCode.RESOURCE_EXHAUSTED,
}

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def status_of(exc: RoutingError) -> StatusCode:
    """The status of a domain error, by its nearest mapped class (so that subclasses such
    as a planner's `Infeasible(Conflict)` keep their family's status)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return StatusCode.INTERNAL


Ctx = grpc.aio.ServicerContext[Any, Any]


def translate_errors(method: F) -> F:
    """Domain errors -> gRPC statuses; Redis connection trouble -> UNAVAILABLE."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: Ctx) -> Any:
        try:
            return await method(self, request, context)
        except RoutingError as exc:
            await context.abort(status_of(exc), str(exc))
        except STORE_DOWN as exc:
            await context.abort(StatusCode.UNAVAILABLE, f"state store unavailable: {exc}")

    return wrapper  # type: ignore[return-value]


def translate_stream_errors(method: Callable[..., AsyncIterator[Any]]) -> Any:
    """The same for server-streaming methods."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: Ctx) -> Any:
        try:
            async for item in method(self, request, context):
                yield item
        except RoutingError as exc:
            await context.abort(status_of(exc), str(exc))
        except STORE_DOWN as exc:
            await context.abort(StatusCode.UNAVAILABLE, f"state store unavailable: {exc}")

    return wrapper


def _principal() -> Principal:
    principal = current_principal.get()
    if principal is None:
        raise Unauthenticated("missing, unknown, revoked or expired API key")
    return principal


def tenant_of(field: str, parent: str) -> TenantId:
    """The tenant of a `tenants/{t}` parent, which must be the API key's."""
    tenant = convert.parse_parent(field, parent)
    check_tenant(_principal(), tenant)
    return tenant


def named(field: str, name: str, collection: str) -> tuple[TenantId, str]:
    """(tenant, id) of a resource name in the API key's tenant."""
    tenant, ident = convert.parse_name(field, name, collection)
    check_tenant(_principal(), tenant)
    return tenant, ident


def agent_named(field: str, name: str) -> tuple[TenantId, AgentId]:
    """(tenant, agent) the API key may act for."""
    tenant, agent = named(field, name, "agents")
    check_agent(_principal(), AgentId(agent))
    return tenant, AgentId(agent)


def offer_named(field: str, name: str) -> tuple[TenantId, AgentId, ContactId]:
    """(tenant, agent, contact) of an offer the API key may act on."""
    tenant, agent, contact = convert.parse_offer_name(field, name)
    check_tenant(_principal(), tenant)
    check_agent(_principal(), agent)
    return tenant, agent, contact


class ContactService(contact_grpc.ContactServiceServicer):
    """Platform API: contacts, queue figures, customers."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @translate_errors
    async def SubmitContact(
        self, request: contact_pb.SubmitContactRequest, context: Ctx
    ) -> pb.Contact:
        tenant = tenant_of("parent", request.parent)
        if not request.HasField("contact"):
            raise InvalidArgument("contact", "required")
        draft, identities = convert.contact_from_pb(request.contact)
        if len(request.request_id) > 128 or not request.request_id.isprintable():
            raise InvalidArgument("request_id", "at most 128 printable characters")
        record = await self._engine.submit(tenant, draft, identities, request.request_id)
        return convert.contact_to_pb(tenant, record)

    @translate_errors
    async def GetContact(self, request: contact_pb.GetContactRequest, context: Ctx) -> pb.Contact:
        tenant, cid = named("name", request.name, "contacts")
        return convert.contact_to_pb(tenant, await self._engine.get_contact(tenant, ContactId(cid)))

    @translate_errors
    async def CancelContact(
        self, request: contact_pb.CancelContactRequest, context: Ctx
    ) -> pb.Contact:
        tenant, cid = named("name", request.name, "contacts")
        reason = convert.reason_name("reason", request.reason) or "cancelled"
        record = await self._engine.cancel(tenant, ContactId(cid), reason)
        return convert.contact_to_pb(tenant, record)

    @translate_stream_errors
    async def WatchContact(
        self, request: contact_pb.WatchContactRequest, context: Ctx
    ) -> AsyncIterator[contact_pb.ContactEvent]:
        tenant, cid = named("name", request.name, "contacts")
        async for event, record in self._engine.watch_contact(tenant, ContactId(cid)):
            msg = contact_pb.ContactEvent(
                contact=convert.contact_to_pb(tenant, record), event=event
            )
            msg.time.GetCurrentTime()
            yield msg

    @translate_errors
    async def GetQueueStats(
        self, request: contact_pb.GetQueueStatsRequest, context: Ctx
    ) -> contact_pb.QueueStats:
        tenant = tenant_of("parent", request.parent)
        issue = convert.reason_name("issue", request.issue)
        ch = convert.channel("channel", request.channel) if request.channel else None
        figures = await queue_figures(self._engine, tenant, issue, ch)
        reply = contact_pb.QueueStats(
            waiting=figures.waiting,
            agents_available=figures.agents_available,
            agents_signed_in=figures.agents_signed_in,
        )
        reply.read_time.FromMilliseconds(figures.read_ms)
        for v in figures.views:
            row = reply.views.add(
                issue=v.issue,
                channel=convert.CHANNEL_PB[v.channel],
                waiting=v.waiting,
                answered=v.answered,
                answered_in_target=v.answered_in_target,
                abandoned=v.abandoned,
                service_level=v.service_level,
                eligible_agents=v.eligible_available,
            )
            row.oldest_wait.CopyFrom(convert.duration(v.oldest_wait_s))
            if v.estimate.wait_s is not None:
                row.expected_wait.CopyFrom(convert.duration(v.estimate.wait_s))
            if v.aht_s is not None:
                row.average_handle_time.CopyFrom(convert.duration(v.aht_s))
        return reply

    @translate_stream_errors
    async def WatchQueueFigures(
        self, request: contact_pb.WatchQueueFiguresRequest, context: Ctx
    ) -> AsyncIterator[contact_pb.LiveFigures]:
        tenant = tenant_of("parent", request.parent)
        interval = convert.seconds("min_interval", request.min_interval) or 1.0
        if not 0.1 <= interval <= 60:
            raise InvalidArgument("min_interval", "must be 0.1-60 s")
        async for figures, rows in watch_figures(self._engine, tenant, interval):
            yield convert.live_figures_to_pb(figures, rows)

    @translate_errors
    async def EstimateWait(
        self, request: contact_pb.EstimateWaitRequest, context: Ctx
    ) -> contact_pb.WaitEstimate:
        tenant = tenant_of("parent", request.parent)
        issue = check_name("issue", request.issue)
        ch = convert.channel("channel", request.channel)
        if not 0 <= request.priority <= 9:
            raise InvalidArgument("priority", "must be 0..9")
        estimate = await estimate_wait(self._engine, tenant, issue, ch, request.priority)
        return contact_pb.WaitEstimate(**convert.wait_fields(estimate))  # type: ignore[arg-type]

    @translate_errors
    async def GetCustomer(
        self, request: contact_pb.GetCustomerRequest, context: Ctx
    ) -> pb.Customer:
        tenant, cid = convert.customer_id("name", request.name)
        check_tenant(_principal(), tenant)
        return convert.customer_to_pb(tenant, await self._engine.customer(tenant, cid))

    @translate_errors
    async def LookupCustomer(
        self, request: contact_pb.LookupCustomerRequest, context: Ctx
    ) -> pb.Customer:
        tenant = tenant_of("parent", request.parent)
        if not request.HasField("identity"):
            raise InvalidArgument("identity", "required")
        kind, value = convert.identity_from_pb("identity", request.identity)
        return convert.customer_to_pb(
            tenant, await self._engine.lookup_customer(tenant, kind, value)
        )

    @translate_errors
    async def EscalateContact(
        self, request: contact_pb.EscalateContactRequest, context: Ctx
    ) -> pb.Contact:
        tenant, cid = named("name", request.name, "contacts")
        token = convert.token("token", request.token)
        summary = convert.note("summary", request.summary)
        record = await self._engine.escalate(tenant, ContactId(cid), token, summary)
        return convert.contact_to_pb(tenant, record)

    @translate_errors
    async def RequestCallback(
        self, request: contact_pb.RequestCallbackRequest, context: Ctx
    ) -> pb.Contact:
        tenant, cid = named("name", request.name, "contacts")
        at_s = None
        if request.HasField("callback_time"):
            at_s = convert.instant("callback_time", request.callback_time)
        record = await self._engine.request_callback(tenant, ContactId(cid), at_s)
        return convert.contact_to_pb(tenant, record)


class AgentService(agent_grpc.AgentServiceServicer):
    """Agent desktop API: presence and the offer lifecycle."""

    def __init__(self, engine: Engine, supervision: Supervision) -> None:
        self._engine = engine
        self._supervision = supervision

    async def _agent_pb(self, tenant: TenantId, agent_id: AgentId) -> pb.Agent:
        return convert.agent_to_pb(tenant, await self._supervision.get_agent(tenant, agent_id))

    @translate_errors
    async def SignIn(self, request: agent_pb.SignInRequest, context: Ctx) -> pb.Agent:
        tenant, agent = agent_named("name", request.name)
        state = (
            AgentState.AVAILABLE
            if request.state == pb.AGENT_STATE_UNSPECIFIED
            else convert.agent_state(
                "state", request.state, (AgentState.AVAILABLE, AgentState.AWAY)
            )
        )
        reason = convert.reason_name("away_reason", request.away_reason)
        await self._engine.set_state(tenant, agent, state, reason, _principal().actor, sign_in=True)
        return await self._agent_pb(tenant, agent)

    @translate_errors
    async def SignOut(self, request: agent_pb.SignOutRequest, context: Ctx) -> pb.Agent:
        tenant, agent = agent_named("name", request.name)
        await self._engine.set_state(tenant, agent, AgentState.SIGNED_OUT, "", _principal().actor)
        return await self._agent_pb(tenant, agent)

    @translate_errors
    async def SetAgentState(self, request: agent_pb.SetAgentStateRequest, context: Ctx) -> pb.Agent:
        tenant, agent = agent_named("name", request.name)
        state = convert.agent_state("state", request.state, (AgentState.AVAILABLE, AgentState.AWAY))
        reason = convert.reason_name("away_reason", request.away_reason)
        await self._engine.set_state(tenant, agent, state, reason, _principal().actor)
        return await self._agent_pb(tenant, agent)

    @translate_stream_errors
    async def StreamOffers(
        self, request: agent_pb.StreamOffersRequest, context: Ctx
    ) -> AsyncIterator[agent_pb.OfferEvent]:
        tenant, agent = agent_named("name", request.name)
        async for item in self._engine.offers(tenant, agent):
            if isinstance(item, OfferView) and item.held:
                yield agent_pb.OfferEvent(held=convert.offer_to_pb(tenant, item))
            elif isinstance(item, OfferView):
                yield agent_pb.OfferEvent(offer=convert.offer_to_pb(tenant, item))
            elif isinstance(item, Reconciling):
                notice = agent_pb.Reconciling()
                notice.until.FromMilliseconds(item.until_ms)
                yield agent_pb.OfferEvent(reconciling=notice)
            else:
                yield agent_pb.OfferEvent(
                    withdrawn=agent_pb.OfferWithdrawn(
                        name=convert.offer_name(tenant, item.agent_id, item.contact_id),
                        token=item.token,
                        reason=item.reason,
                    )
                )

    @translate_errors
    async def AcceptOffer(self, request: agent_pb.AcceptOfferRequest, context: Ctx) -> pb.Contact:
        tenant, agent, contact = offer_named("name", request.name)
        token = convert.token("token", request.token)
        return convert.contact_to_pb(
            tenant, await self._engine.accept(tenant, agent, contact, token)
        )

    @translate_errors
    async def DeclineOffer(self, request: agent_pb.DeclineOfferRequest, context: Ctx) -> pb.Contact:
        tenant, agent, contact = offer_named("name", request.name)
        token = convert.token("token", request.token)
        convert.reason_name("reason", request.reason)
        return convert.contact_to_pb(
            tenant, await self._engine.decline(tenant, agent, contact, token)
        )

    @translate_errors
    async def CompleteContact(
        self, request: agent_pb.CompleteContactRequest, context: Ctx
    ) -> pb.Contact:
        tenant, agent, contact = offer_named("name", request.name)
        token = convert.token("token", request.token)
        outcome = convert.outcome("outcome", request.outcome)
        note = convert.note("note", request.note)
        score = None
        if request.HasField("satisfaction"):
            score = convert.satisfaction("satisfaction", request.satisfaction)
        record = await self._engine.complete(tenant, agent, contact, token, outcome, note, score)
        return convert.contact_to_pb(tenant, record)

    @translate_errors
    async def Heartbeat(
        self, request: agent_pb.HeartbeatRequest, context: Ctx
    ) -> agent_pb.HeartbeatResponse:
        tenant, agent = agent_named("name", request.name)
        state = await self._engine.heartbeat(tenant, agent)
        reply = agent_pb.HeartbeatResponse(
            presence_timeout=convert.duration(self._engine.settings.presence_timeout_s),
            state=convert.STATE_PB[state],
        )
        reply.server_time.GetCurrentTime()
        return reply


class SupervisorService(sup_grpc.SupervisorServiceServicer):
    """Supervisor API: agents, skills, rules, audit."""

    def __init__(self, engine: Engine, supervision: Supervision) -> None:
        self._engine = engine
        self._sup = supervision

    def _changed(self, tenant: TenantId, agent: AgentId) -> None:
        self._engine.router(tenant).agent_changed(agent)

    @translate_errors
    async def CreateAgent(self, request: sup_pb.CreateAgentRequest, context: Ctx) -> pb.Agent:
        tenant = tenant_of("parent", request.parent)
        agent_id = convert.resource_id("agent_id", request.agent_id, "agent")
        if not request.HasField("agent"):
            raise InvalidArgument("agent", "required")
        agent = convert.agent_from_pb(agent_id, request.agent)
        created = await self._sup.create_agent(tenant, agent, _principal().actor)
        return convert.agent_to_pb(tenant, created)

    @translate_errors
    async def GetAgent(self, request: sup_pb.GetAgentRequest, context: Ctx) -> pb.Agent:
        tenant, agent = named("name", request.name, "agents")
        return convert.agent_to_pb(tenant, await self._sup.get_agent(tenant, AgentId(agent)))

    @translate_errors
    async def ListAgents(
        self, request: sup_pb.ListAgentsRequest, context: Ctx
    ) -> sup_pb.ListAgentsResponse:
        tenant = tenant_of("parent", request.parent)
        size = convert.page_size("page_size", request.page_size)
        state = (
            None
            if request.state == pb.AGENT_STATE_UNSPECIFIED
            else convert.agent_state("state", request.state, tuple(AgentState))
        )
        skill = convert.reason_name("skill", request.skill)
        if request.page_token and not convert.ID_RE.match(request.page_token):
            raise InvalidArgument("page_token", "not a token from a previous response")
        page, token, total = await self._sup.list_agents(
            tenant, size, request.page_token, state, skill
        )
        return sup_pb.ListAgentsResponse(
            agents=[convert.agent_to_pb(tenant, a) for a in page],
            next_page_token=token,
            total_size=total,
        )

    @translate_errors
    async def UpdateAgent(self, request: sup_pb.UpdateAgentRequest, context: Ctx) -> pb.Agent:
        if not request.HasField("agent"):
            raise InvalidArgument("agent", "required")
        tenant, agent = named("agent.name", request.agent.name, "agents")
        paths = list(request.update_mask.paths)
        if not paths:
            raise InvalidArgument(
                "update_mask", "name at least one of display_name, skills, capacities, groups"
            )
        changes: dict[str, Any] = {}
        for path in paths:
            if path == "display_name":
                changes["display_name"] = request.agent.display_name[:128]
            elif path == "skills":
                changes["skills"] = convert.skills_from_pb("agent.skills", request.agent.skills)
            elif path == "capacities":
                caps = convert.capacity_from_pb("agent.capacities", request.agent.capacities)
                if not any(caps.values()):
                    raise InvalidArgument("agent.capacities", "at least one channel >= 1")
                changes["capacity"] = caps
            elif path == "groups":
                changes["groups"] = convert.groups_from_pb("agent.groups", request.agent.groups)
            else:
                raise InvalidArgument("update_mask", f"cannot update {path[:40]!r}")
        etag = request.agent.etag
        if etag and not etag.isdigit():
            raise InvalidArgument("agent.etag", "not an etag from this service")
        updated = await self._sup.update_agent(
            tenant, AgentId(agent), changes, int(etag) if etag else None, _principal().actor
        )
        self._changed(tenant, AgentId(agent))
        return convert.agent_to_pb(tenant, updated)

    @translate_errors
    async def DeleteAgent(
        self, request: sup_pb.DeleteAgentRequest, context: Ctx
    ) -> sup_pb.DeleteAgentResponse:
        tenant, agent = named("name", request.name, "agents")
        deleted = await self._sup.delete_agent(tenant, AgentId(agent), _principal().actor)
        self._changed(tenant, AgentId(agent))
        return sup_pb.DeleteAgentResponse(agent=convert.agent_to_pb(tenant, deleted))

    @translate_errors
    async def SetSkill(self, request: sup_pb.SetSkillRequest, context: Ctx) -> pb.Agent:
        tenant, agent = named("agent", request.agent, "agents")
        if not request.HasField("skill"):
            raise InvalidArgument("skill", "required")
        updated = await self._sup.set_skill(
            tenant,
            AgentId(agent),
            request.skill.skill,
            request.skill.proficiency,
            _principal().actor,
        )
        self._changed(tenant, AgentId(agent))
        return convert.agent_to_pb(tenant, updated)

    @translate_errors
    async def RemoveSkill(self, request: sup_pb.RemoveSkillRequest, context: Ctx) -> pb.Agent:
        tenant, agent = named("agent", request.agent, "agents")
        updated = await self._sup.remove_skill(
            tenant, AgentId(agent), request.skill, _principal().actor
        )
        self._changed(tenant, AgentId(agent))
        return convert.agent_to_pb(tenant, updated)

    @translate_errors
    async def CreateRoutingRule(
        self, request: sup_pb.CreateRoutingRuleRequest, context: Ctx
    ) -> pb.RoutingRule:
        tenant = tenant_of("parent", request.parent)
        issue = check_name("issue", request.issue)
        if not request.HasField("routing_rule"):
            raise InvalidArgument("routing_rule", "required")
        rule = convert.rule_from_pb(issue, request.routing_rule)
        saved = await self._sup.write_rule(tenant, rule, "create", _principal().actor)
        self._engine.router(tenant).rules_changed()
        return convert.rule_to_pb(tenant, saved)

    @translate_errors
    async def GetRoutingRule(
        self, request: sup_pb.GetRoutingRuleRequest, context: Ctx
    ) -> pb.RoutingRule:
        tenant, issue = named("name", request.name, "routingRules")
        return convert.rule_to_pb(tenant, await self._sup.get_rule(tenant, issue))

    @translate_errors
    async def CreateRoutingSkill(
        self, request: sup_pb.CreateRoutingSkillRequest, context: Ctx
    ) -> pb.RoutingSkill:
        tenant = tenant_of("parent", request.parent)
        view = await self._sup.create_skill(
            tenant,
            request.routing_skill_id,
            request.routing_skill.description,
            _principal().actor,
        )
        return convert.skill_to_pb(tenant, view)

    @translate_errors
    async def ListRoutingSkills(
        self, request: sup_pb.ListRoutingSkillsRequest, context: Ctx
    ) -> sup_pb.ListRoutingSkillsResponse:
        tenant = tenant_of("parent", request.parent)
        size = convert.page_size("page_size", request.page_size)
        views = await self._sup.list_skills(tenant)
        token = request.page_token
        after = [v for v in views if v.skill > token] if token else views
        page = after[:size]
        return sup_pb.ListRoutingSkillsResponse(
            routing_skills=[convert.skill_to_pb(tenant, v) for v in page],
            next_page_token=page[-1].skill if len(after) > size else "",
        )

    @translate_errors
    async def DeleteRoutingSkill(
        self, request: sup_pb.DeleteRoutingSkillRequest, context: Ctx
    ) -> pb.RoutingSkill:
        tenant, skill = named("name", request.name, "routingSkills")
        view = await self._sup.delete_skill(tenant, skill, _principal().actor)
        return convert.skill_to_pb(tenant, view)

    @translate_errors
    async def ListRoutingRules(
        self, request: sup_pb.ListRoutingRulesRequest, context: Ctx
    ) -> sup_pb.ListRoutingRulesResponse:
        tenant = tenant_of("parent", request.parent)
        size = convert.page_size("page_size", request.page_size)
        rules = await self._sup.list_rules(tenant)
        after = [r for r in rules if r.issue > request.page_token] if request.page_token else rules
        page = after[:size]
        return sup_pb.ListRoutingRulesResponse(
            routing_rules=[convert.rule_to_pb(tenant, r) for r in page],
            next_page_token=page[-1].issue if len(after) > size else "",
        )

    @translate_errors
    async def UpdateRoutingRule(
        self, request: sup_pb.UpdateRoutingRuleRequest, context: Ctx
    ) -> pb.RoutingRule:
        if not request.HasField("routing_rule"):
            raise InvalidArgument("routing_rule", "required")
        tenant, issue = named("routing_rule.name", request.routing_rule.name, "routingRules")
        rule = convert.rule_from_pb(issue, request.routing_rule)
        mode = "upsert" if request.allow_missing else "update"
        saved = await self._sup.write_rule(tenant, rule, mode, _principal().actor)
        self._engine.router(tenant).rules_changed()
        return convert.rule_to_pb(tenant, saved)

    @translate_errors
    async def DeleteRoutingRule(
        self, request: sup_pb.DeleteRoutingRuleRequest, context: Ctx
    ) -> sup_pb.DeleteRoutingRuleResponse:
        tenant, issue = named("name", request.name, "routingRules")
        deleted = await self._sup.delete_rule(tenant, issue, _principal().actor)
        self._engine.router(tenant).rules_changed()
        return sup_pb.DeleteRoutingRuleResponse(routing_rule=convert.rule_to_pb(tenant, deleted))

    @translate_errors
    async def ListAuditEvents(
        self, request: sup_pb.ListAuditEventsRequest, context: Ctx
    ) -> sup_pb.ListAuditEventsResponse:
        tenant = tenant_of("parent", request.parent)
        size = convert.page_size("page_size", request.page_size)
        token = request.page_token
        if token and not all(part.isdigit() for part in token.split("-", 1)):
            raise InvalidArgument("page_token", "not a token from a previous response")
        events, next_token = await self._sup.audit(tenant, size, token, request.target[:300])
        return sup_pb.ListAuditEventsResponse(
            audit_events=[convert.audit_to_pb(tenant, e) for e in events],
            next_page_token=next_token,
        )

    @translate_errors
    async def GetRoutingExplanation(
        self, request: sup_pb.GetRoutingExplanationRequest, context: Ctx
    ) -> pb.RoutingExplanation:
        tenant_of("name", "/".join(request.name.split("/")[:2]))  # the key's tenant first
        tenant, contact_id = named("name", request.name, "contacts")
        why = await routing_explanation(self._engine.state, tenant, ContactId(contact_id))
        return convert.explanation_to_pb(tenant, why)

    @translate_errors
    async def MergeCustomers(
        self, request: sup_pb.MergeCustomersRequest, context: Ctx
    ) -> pb.Customer:
        tenant_of("name", "/".join(request.name.split("/")[:2]))
        tenant, keep = convert.customer_id("name", request.name)
        other_tenant, gone = convert.customer_id("merged", request.merged)
        if other_tenant != tenant:
            raise InvalidArgument("merged", "must be a customer of the same tenant")
        check_tenant(_principal(), tenant)
        await merge_customers(self._engine.state, tenant, keep, gone, _principal().actor)
        return convert.customer_to_pb(tenant, await self._engine.customer(tenant, keep))


class AdminService(admin_grpc.AdminServiceServicer):
    """Admin API: API keys."""

    def __init__(self, supervision: Supervision, forget: Callable[[], None]) -> None:
        self._sup = supervision
        self._forget = forget

    @translate_errors
    async def CreateApiKey(
        self, request: admin_pb.CreateApiKeyRequest, context: Ctx
    ) -> admin_pb.CreateApiKeyResponse:
        tenant = tenant_of("parent", request.parent)
        if not request.HasField("api_key"):
            raise InvalidArgument("api_key", "required")
        role = convert.role("api_key.role", request.api_key.role)
        agent_id = request.api_key.agent_id
        if agent_id:
            convert.resource_id("api_key.agent_id", agent_id, "agent")
        view, secret = await self._sup.create_api_key(
            tenant, role, agent_id, request.api_key.display_name[:128], _principal().actor
        )
        return admin_pb.CreateApiKeyResponse(api_key=convert.api_key_to_pb(view), secret=secret)

    @translate_errors
    async def ListApiKeys(
        self, request: admin_pb.ListApiKeysRequest, context: Ctx
    ) -> admin_pb.ListApiKeysResponse:
        tenant = tenant_of("parent", request.parent)
        keys = await self._sup.list_api_keys(tenant)
        return admin_pb.ListApiKeysResponse(api_keys=[convert.api_key_to_pb(k) for k in keys])

    @translate_errors
    async def RevokeApiKey(self, request: admin_pb.RevokeApiKeyRequest, context: Ctx) -> pb.ApiKey:
        tenant, key_id = named("name", request.name, "apiKeys")
        view = await self._sup.revoke_api_key(tenant, key_id, _principal().actor)
        self._forget()
        return convert.api_key_to_pb(view)
