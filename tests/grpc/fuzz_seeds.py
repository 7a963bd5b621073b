"""Valid requests of each RPC on the fuzzer's floor (``tests.grpc.fuzz_target``): the
fuzzer breaks one or two of their fields, so that bad values reach the checks after the
first ones. An RPC missing here (a new one) is only generated from its descriptor.
"""

from __future__ import annotations

from google.protobuf.message import Message

from router.pb.omniroute.v1 import admin_service_pb2 as admin_pb
from router.pb.omniroute.v1 import agent_service_pb2 as agent_pb
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import planning_service_pb2 as plan_pb
from router.pb.omniroute.v1 import resources_pb2 as pb
from router.pb.omniroute.v1 import supervisor_service_pb2 as sup_pb


def agent_profile(level: int) -> pb.Agent:
    """An agent with billing at `level`, one voice and three chats."""
    return pb.Agent(
        skills=[pb.Skill(skill="billing", proficiency=level)],
        capacities=[
            pb.ChannelCapacity(channel=pb.CHANNEL_VOICE, max_contacts=1),
            pb.ChannelCapacity(channel=pb.CHANNEL_CHAT, max_contacts=3),
        ],
    )


def seeds(
    offer: pb.Offer, billing: pb.Contact, tech: pb.Contact, revoked_key: str
) -> dict[str, list[Message]]:
    """A valid request of each RPC on the floor, which holds `offer` (of the `billing`
    contact to agent a1), the waiting `tech` contact and the `revoked_key`."""
    t, a1, a2 = "tenants/t1", "tenants/t1/agents/a1", "tenants/t1/agents/a2"
    rule = pb.RoutingRule(
        required_skills=[pb.SkillRequirement(skill="sales", min_proficiency=3)],
        service_level=0.8,
        answer_targets=[pb.ChannelTarget(channel=pb.CHANNEL_CHAT, answer_target={"seconds": 60})],
        relaxation_steps=[
            pb.RelaxationStep(
                after={"seconds": 30},
                skills=[pb.SkillRequirement(skill="sales", min_proficiency=2)],
                service_level_below=0.5,
            )
        ],
        weights=pb.ScoringWeights(proficiency=1.0, idle=0.5, idle_horizon={"seconds": 600}),
        affinity_wait={"seconds": 10},
        repeat_contacts=pb.RepeatContactPolicy(window={"seconds": 3600}, priority_boost=1),
    )
    contact = pb.Contact(
        channel=pb.CHANNEL_CHAT,
        issue="billing",
        priority=3,
        language="en",
        identities=[pb.Identity(kind=pb.IDENTITY_KIND_PHONE, value="+15550002")],
        attributes={"crm": "42"},
    )
    found: dict[str, Message] = {
        "AdminService/CreateApiKey": admin_pb.CreateApiKeyRequest(
            parent=t, api_key=pb.ApiKey(role=pb.ROLE_PLATFORM, display_name="fuzz")
        ),
        "AdminService/ListApiKeys": admin_pb.ListApiKeysRequest(parent=t),
        "AdminService/RevokeApiKey": admin_pb.RevokeApiKeyRequest(name=revoked_key),
        "AgentService/AcceptOffer": agent_pb.AcceptOfferRequest(name=offer.name, token=1),
        "AgentService/CompleteContact": agent_pb.CompleteContactRequest(
            name=offer.name, token=1, outcome=pb.OUTCOME_RESOLVED, note="fuzz"
        ),
        "AgentService/DeclineOffer": agent_pb.DeclineOfferRequest(
            name=offer.name, token=1, reason="busy"
        ),
        "AgentService/Heartbeat": agent_pb.HeartbeatRequest(name=a1),
        "AgentService/SetAgentState": agent_pb.SetAgentStateRequest(
            name=a1, state=pb.AGENT_STATE_AWAY, away_reason="lunch"
        ),
        "AgentService/SignIn": agent_pb.SignInRequest(name=a2, state=pb.AGENT_STATE_AVAILABLE),
        "AgentService/SignOut": agent_pb.SignOutRequest(name=a2),
        "AgentService/StreamOffers": agent_pb.StreamOffersRequest(name=a1),
        "ContactService/CancelContact": contact_pb.CancelContactRequest(
            name=tech.name, reason="hung_up"
        ),
        "ContactService/EstimateWait": contact_pb.EstimateWaitRequest(
            parent=t, issue="billing", channel=pb.CHANNEL_CHAT, priority=1
        ),
        "ContactService/GetContact": contact_pb.GetContactRequest(name=tech.name),
        "ContactService/GetCustomer": contact_pb.GetCustomerRequest(name=billing.customer),
        "ContactService/GetQueueStats": contact_pb.GetQueueStatsRequest(
            parent=t, issue="billing", channel=pb.CHANNEL_CHAT
        ),
        "ContactService/LookupCustomer": contact_pb.LookupCustomerRequest(
            parent=t, identity=pb.Identity(kind=pb.IDENTITY_KIND_PHONE, value="+15550001")
        ),
        "ContactService/SubmitContact": contact_pb.SubmitContactRequest(
            parent=t, contact=contact, request_id="fuzz-1"
        ),
        "ContactService/WatchContact": contact_pb.WatchContactRequest(name=tech.name),
        "ContactService/WatchQueueFigures": contact_pb.WatchQueueFiguresRequest(
            parent=t, min_interval={"seconds": 1}
        ),
        "PlanningService/CreatePlan": plan_pb.CreatePlanRequest(
            parent=t,
            plan_spec="name: fuzz\nlog: log.csv\n",
            files=[plan_pb.PlanFile(name="log.csv", content="start,issue\n")],
            request_id="p1",
        ),
        "PlanningService/GetPlan": plan_pb.GetPlanRequest(
            name=f"{t}/plans/p1", view=plan_pb.PLAN_VIEW_BASIC
        ),
        "PlanningService/ListPlans": plan_pb.ListPlansRequest(parent=t),
        "PlanningService/WatchPlan": plan_pb.WatchPlanRequest(name=f"{t}/plans/p1"),
        "SupervisorService/CreateAgent": sup_pb.CreateAgentRequest(
            parent=t, agent_id="a3", agent=agent_profile(2)
        ),
        "SupervisorService/CreateRoutingRule": sup_pb.CreateRoutingRuleRequest(
            parent=t, issue="sales", routing_rule=rule
        ),
        "SupervisorService/CreateRoutingSkill": sup_pb.CreateRoutingSkillRequest(
            parent=t, routing_skill_id="senior", routing_skill=pb.RoutingSkill(description="VIP")
        ),
        "SupervisorService/ListRoutingSkills": sup_pb.ListRoutingSkillsRequest(
            parent=t, page_size=10
        ),
        "SupervisorService/DeleteRoutingSkill": sup_pb.DeleteRoutingSkillRequest(
            name=f"{t}/routingSkills/billing"
        ),
        "SupervisorService/DeleteAgent": sup_pb.DeleteAgentRequest(name=a2),
        "SupervisorService/DeleteRoutingRule": sup_pb.DeleteRoutingRuleRequest(
            name=f"{t}/routingRules/tech"
        ),
        "SupervisorService/GetAgent": sup_pb.GetAgentRequest(name=a1),
        "SupervisorService/GetRoutingExplanation": sup_pb.GetRoutingExplanationRequest(
            name=billing.name
        ),
        "SupervisorService/GetRoutingRule": sup_pb.GetRoutingRuleRequest(
            name=f"{t}/routingRules/billing"
        ),
        "SupervisorService/ListAgents": sup_pb.ListAgentsRequest(
            parent=t, page_size=10, state=pb.AGENT_STATE_AVAILABLE, skill="billing"
        ),
        "SupervisorService/ListAuditEvents": sup_pb.ListAuditEventsRequest(
            parent=t, page_size=10, target=a1
        ),
        "SupervisorService/ListRoutingRules": sup_pb.ListRoutingRulesRequest(
            parent=t, page_size=10
        ),
        "SupervisorService/MergeCustomers": sup_pb.MergeCustomersRequest(
            name=billing.customer, merged=tech.customer
        ),
        "SupervisorService/RemoveSkill": sup_pb.RemoveSkillRequest(agent=a2, skill="billing"),
        "SupervisorService/SetSkill": sup_pb.SetSkillRequest(
            agent=a2, skill=pb.Skill(skill="tech", proficiency=3)
        ),
        "SupervisorService/UpdateAgent": sup_pb.UpdateAgentRequest(
            agent=pb.Agent(
                name=a2, display_name="B", skills=[pb.Skill(skill="tech", proficiency=2)]
            ),
            update_mask={"paths": ["display_name", "skills"]},
        ),
        "SupervisorService/UpdateRoutingRule": sup_pb.UpdateRoutingRuleRequest(
            routing_rule=pb.RoutingRule(
                name=f"{t}/routingRules/billing",
                required_skills=[pb.SkillRequirement(skill="billing", min_proficiency=2)],
            )
        ),
    }
    return {rpc: [request] for rpc, request in found.items()}
