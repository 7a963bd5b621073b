"""Protobuf <-> domain. Every request field is validated here; an InvalidArgument names
the field by its path in the request. No protobuf type goes further in than this module.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from queues.records import ContactRecord, HistoryItem
from router.auth import TENANT_RE, Role
from router.domain import (
    MAX_PRIORITY,
    MAX_SATISFACTION,
    MIN_PRIORITY,
    MIN_SATISFACTION,
    Agent,
    AgentId,
    AgentKind,
    AgentState,
    Channel,
    Contact,
    ContactId,
    ContactStatus,
    CustomerId,
    TenantId,
)
from router.engine import CustomerView, OfferView
from router.errors import InvalidArgument
from router.estimate import WaitEstimate
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import resources_pb2 as pb
from router.rules import MAX_GROUPS, RelaxationStep, Rule, Weights, check_level, check_name
from router.supervision import ApiKeyView, AuditRecord, SkillView

if TYPE_CHECKING:
    from router.figures import QueueFigures
    from router.live_figures import ChannelRow

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_KEY = 64
MAX_ATTRIBUTE_VALUE = 1024
MAX_IDENTITIES = 10
MAX_SKILLS = 200
MAX_NOTE = 2048

CHANNELS: Mapping[int, Channel] = {
    pb.CHANNEL_VOICE: Channel.VOICE,
    pb.CHANNEL_CHAT: Channel.CHAT,
    pb.CHANNEL_SMS: Channel.SMS,
    pb.CHANNEL_EMAIL: Channel.EMAIL,
    pb.CHANNEL_WHATSAPP: Channel.WHATSAPP,
    pb.CHANNEL_SOCIAL: Channel.SOCIAL,
}
CHANNEL_PB: Mapping[Channel, Any] = {v: k for k, v in CHANNELS.items()}
STATES: Mapping[int, AgentState] = {
    pb.AGENT_STATE_SIGNED_OUT: AgentState.SIGNED_OUT,
    pb.AGENT_STATE_AVAILABLE: AgentState.AVAILABLE,
    pb.AGENT_STATE_AWAY: AgentState.AWAY,
}
STATE_PB: Mapping[AgentState, Any] = {v: k for k, v in STATES.items()}
CONTACT_STATE_PB = {
    ContactStatus.QUEUED: pb.CONTACT_STATE_QUEUED,
    ContactStatus.OFFERED: pb.CONTACT_STATE_OFFERED,
    ContactStatus.ASSIGNED: pb.CONTACT_STATE_ASSIGNED,
    ContactStatus.COMPLETED: pb.CONTACT_STATE_COMPLETED,
    ContactStatus.ABANDONED: pb.CONTACT_STATE_ABANDONED,
}
OUTCOMES: Mapping[int, str] = {
    pb.OUTCOME_RESOLVED: "resolved",
    pb.OUTCOME_UNRESOLVED: "unresolved",
    pb.OUTCOME_TRANSFERRED: "transferred",
}
OUTCOME_PB: Mapping[str, Any] = {v: k for k, v in OUTCOMES.items()}
IDENTITY_KINDS: Mapping[int, str] = {
    pb.IDENTITY_KIND_PHONE: "phone",
    pb.IDENTITY_KIND_EMAIL: "email",
    pb.IDENTITY_KIND_CHAT: "chat",
    pb.IDENTITY_KIND_WHATSAPP: "whatsapp",
    pb.IDENTITY_KIND_SOCIAL: "social",
    pb.IDENTITY_KIND_EXTERNAL: "external",
}
IDENTITY_PB: Mapping[str, Any] = {v: k for k, v in IDENTITY_KINDS.items()}
ROLES: Mapping[int, Role] = {
    pb.ROLE_PLATFORM: Role.PLATFORM,
    pb.ROLE_AGENT: Role.AGENT,
    pb.ROLE_SUPERVISOR: Role.SUPERVISOR,
    pb.ROLE_PLANNER: Role.PLANNER,
    pb.ROLE_ADMIN: Role.ADMIN,
}
ROLE_PB: Mapping[Role, Any] = {v: k for k, v in ROLES.items()}

# --- names ----------------------------------------------------------------------------


def resource_id(field: str, value: str, what: str) -> str:
    """`value` if it is a valid resource id."""
    if not ID_RE.match(value):
        raise InvalidArgument(field, f"{what} id {value[:70]!r} must be 1-63 of [a-z0-9_-]")
    return value


def parse_parent(field: str, name: str) -> TenantId:
    """`tenants/{tenant}` -> tenant."""
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "tenants" or not TENANT_RE.match(parts[1]):
        raise InvalidArgument(field, f"must be 'tenants/{{tenant}}', got {name[:80]!r}")
    return TenantId(parts[1])


def parse_name(field: str, name: str, collection: str) -> tuple[TenantId, str]:
    """`tenants/{tenant}/{collection}/{id}` -> (tenant, id)."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "tenants" or parts[2] != collection:
        raise InvalidArgument(
            field, f"must be 'tenants/{{tenant}}/{collection}/{{id}}', got {name[:80]!r}"
        )
    tenant = parse_parent(field, "/".join(parts[:2]))
    if collection in ("routingRules", "routingSkills"):
        return tenant, check_name(field, parts[3])
    return tenant, resource_id(field, parts[3], collection.rstrip("s"))


def parse_offer_name(field: str, name: str) -> tuple[TenantId, AgentId, ContactId]:
    """`tenants/{t}/agents/{a}/offers/{c}` -> (tenant, agent, contact)."""
    parts = name.split("/")
    if len(parts) != 6 or parts[2] != "agents" or parts[4] != "offers":
        raise InvalidArgument(
            field, f"must be 'tenants/{{t}}/agents/{{a}}/offers/{{c}}', got {name[:80]!r}"
        )
    tenant, agent = parse_name(field, "/".join(parts[:4]), "agents")
    return tenant, AgentId(agent), ContactId(resource_id(field, parts[5], "contact"))


def offer_name(tenant: TenantId, agent_id: str, contact_id: str) -> str:
    """Resource name of an offer."""
    return f"tenants/{tenant}/agents/{agent_id}/offers/{contact_id}"


def reason_name(field: str, value: str) -> str:
    """An optional reason code (empty allowed)."""
    return check_name(field, value) if value else ""


# --- scalars --------------------------------------------------------------------------


def channel(field: str, value: int) -> Channel:
    """A channel enum, required."""
    if value in CHANNELS:
        return CHANNELS[value]
    names = ", ".join(c.value for c in Channel)
    if value == pb.CHANNEL_UNSPECIFIED:
        raise InvalidArgument(field, f"required: one of {names}")
    raise InvalidArgument(field, f"unknown channel {value}: one of {names}")


def seconds(field: str, d: Duration, *, allow_zero: bool = True) -> float:
    """A non-negative duration in seconds."""
    value = d.seconds + d.nanos / 1e9
    if value < 0 or d.nanos < 0 or not math.isfinite(value) or value > 366 * 86400:
        raise InvalidArgument(field, "must be a duration from 0 to 366 days")
    if not allow_zero and value == 0:
        raise InvalidArgument(field, "must be positive")
    return value


def duration(value_s: float) -> Duration:
    """Seconds as a Duration."""
    d = Duration()
    d.FromMilliseconds(round(value_s * 1000))
    return d


def timestamp(ms: int) -> Timestamp | None:
    """Epoch milliseconds as a Timestamp (None for 0: unset)."""
    if not ms:
        return None
    t = Timestamp()
    t.FromMilliseconds(ms)
    return t


def _text(field: str, value: str, limit: int) -> str:
    if len(value.encode()) > limit:
        raise InvalidArgument(field, f"at most {limit} bytes")
    return value


# --- contacts -------------------------------------------------------------------------


def contact_from_pb(msg: pb.Contact) -> tuple[Contact, list[tuple[str, str]]]:
    """A draft contact (no id, no arrival yet) and its identities, validated."""
    ch = channel("contact.channel", msg.channel)
    issue = check_name("contact.issue", msg.issue)
    if not MIN_PRIORITY <= msg.priority <= MAX_PRIORITY:
        raise InvalidArgument(
            "contact.priority", f"must be {MIN_PRIORITY}..{MAX_PRIORITY}, got {msg.priority}"
        )
    language = msg.language.lower()
    if language and not LANGUAGE_RE.match(language):
        raise InvalidArgument("contact.language", f"{msg.language[:20]!r} is not a language code")
    if len(msg.identities) > MAX_IDENTITIES:
        raise InvalidArgument("contact.identities", f"at most {MAX_IDENTITIES}")
    identities: list[tuple[str, str]] = []
    for i, ident in enumerate(msg.identities):
        identities.append(identity_from_pb(f"contact.identities[{i}]", ident))
    if len(msg.attributes) > MAX_ATTRIBUTES:
        raise InvalidArgument("contact.attributes", f"at most {MAX_ATTRIBUTES} entries")
    for key, value in msg.attributes.items():
        if not key or len(key.encode()) > MAX_ATTRIBUTE_KEY:
            raise InvalidArgument("contact.attributes", f"keys must be 1-{MAX_ATTRIBUTE_KEY} bytes")
        _text(f"contact.attributes[{key!r}]", value, MAX_ATTRIBUTE_VALUE)
    draft = Contact(
        id=ContactId(""),
        channel=ch,
        issue=issue,
        arrived_at=0.0,
        priority=msg.priority,
        language=language,
        attributes=dict(msg.attributes),
    )
    return draft, sorted(set(identities))


def identity_from_pb(field: str, ident: pb.Identity) -> tuple[str, str]:
    """(kind, value) of an identity, validated and normalised."""
    if ident.kind not in IDENTITY_KINDS:
        raise InvalidArgument(f"{field}.kind", f"unknown identity kind {ident.kind}")
    value = ident.value.strip()
    if not value or len(value) > 256 or any(ch.isspace() for ch in value):
        raise InvalidArgument(f"{field}.value", "must be 1-256 characters without spaces")
    kind = IDENTITY_KINDS[ident.kind]
    return kind, value.lower() if kind == "email" else value


def contact_to_pb(tenant: TenantId, r: ContactRecord) -> pb.Contact:
    """The API view of a stored contact."""
    c = r.contact
    msg = pb.Contact(
        name=f"tenants/{tenant}/contacts/{c.id}",
        channel=CHANNEL_PB[c.channel],
        issue=c.issue,
        priority=c.priority,
        language=c.language,
        identities=[pb.Identity(kind=IDENTITY_PB[k], value=v) for k, v in r.identities],
        attributes=dict(r.attributes),
        customer=f"tenants/{tenant}/customers/{c.customer_id}" if c.customer_id else "",
        state=CONTACT_STATE_PB[r.status],
        agent=f"tenants/{tenant}/agents/{r.agent_id}" if r.agent_id else "",
        outcome=OUTCOME_PB.get(r.outcome, pb.OUTCOME_UNSPECIFIED),
        note=r.note,
        offer_token=r.token,
        answer_target=duration(r.target_ms / 1000),
        bot_first=c.bot_first,
        satisfaction=r.satisfaction,
    )
    if r.escalated_by:
        msg.escalation.bot = f"tenants/{tenant}/agents/{r.escalated_by}"
        msg.escalation.summary = r.bot_summary
        _set_time(msg.escalation.escalate_time, r.escalated_ms)
    if r.callback:
        _set_time(msg.callback.request_time, r.callback_requested_ms)
        _set_time(msg.callback.callback_time, r.callback_ms)
        msg.callback.SetInParent()
    for field, ms in (
        ("create_time", int(c.arrived_at * 1000)),
        ("offer_time", r.offered_ms),
        ("assign_time", r.assigned_ms),
        ("close_time", r.closed_ms),
    ):
        ts = timestamp(ms)
        if ts is not None:
            getattr(msg, field).CopyFrom(ts)
    return msg


def _set_time(field: Timestamp, ms: int) -> None:
    """Set a Timestamp field from epoch milliseconds (0 leaves it unset)."""
    if ms:
        field.FromMilliseconds(ms)


def history_to_pb(tenant: TenantId, h: HistoryItem) -> pb.HistoryEntry:
    """One history entry."""
    msg = pb.HistoryEntry(
        contact=f"tenants/{tenant}/contacts/{h.contact_id}",
        channel=CHANNEL_PB[h.channel],
        issue=h.issue,
        agent=f"tenants/{tenant}/agents/{h.agent_id}" if h.agent_id else "",
        outcome=OUTCOME_PB.get(h.outcome, pb.OUTCOME_UNSPECIFIED),
        note=h.note,
        state=CONTACT_STATE_PB.get(ContactStatus(h.status), pb.CONTACT_STATE_UNSPECIFIED),
        bot=h.bot,
        satisfaction=h.satisfaction,
    )
    ts = timestamp(h.time_ms)
    if ts is not None:
        msg.time.CopyFrom(ts)
    return msg


def customer_to_pb(tenant: TenantId, c: CustomerView) -> pb.Customer:
    """A customer with history."""
    msg = pb.Customer(
        name=f"tenants/{tenant}/customers/{c.id}",
        identities=[pb.Identity(kind=IDENTITY_PB[k], value=v) for k, v in c.identities],
        history=[history_to_pb(tenant, h) for h in c.history],
    )
    ts = timestamp(c.created_ms)
    if ts is not None:
        msg.create_time.CopyFrom(ts)
    return msg


def offer_to_pb(tenant: TenantId, o: OfferView) -> pb.Offer:
    """An offer with the contact and the customer's history."""
    msg = pb.Offer(
        name=offer_name(tenant, o.agent_id, o.record.id),
        token=o.record.token,
        contact=contact_to_pb(tenant, o.record),
        reason=o.record.reason,
    )
    if o.customer is not None:
        msg.customer.CopyFrom(customer_to_pb(tenant, o.customer))
    ts = timestamp(o.record.deadline_ms)
    if ts is not None:
        msg.expire_time.CopyFrom(ts)
    return msg


def customer_id(field: str, name: str) -> tuple[TenantId, CustomerId]:
    """`tenants/{t}/customers/{c}` -> (tenant, customer)."""
    tenant, cid = parse_name(field, name, "customers")
    return tenant, CustomerId(cid)


def outcome(field: str, value: int) -> str:
    """A completion outcome, required."""
    if value not in OUTCOMES:
        raise InvalidArgument(field, "required: RESOLVED, UNRESOLVED or TRANSFERRED")
    return OUTCOMES[value]


def note(field: str, value: str) -> str:
    """A completion note."""
    return _text(field, value, MAX_NOTE)


def satisfaction(field: str, value: int) -> int:
    """A customer satisfaction score, 1-5."""
    if not MIN_SATISFACTION <= value <= MAX_SATISFACTION:
        raise InvalidArgument(
            field, f"must be {MIN_SATISFACTION}..{MAX_SATISFACTION} when set, got {value}"
        )
    return value


def instant(field: str, t: Timestamp) -> float:
    """A Timestamp as seconds since the epoch, refused unless it is a valid time."""
    if not 0 <= t.nanos < 1_000_000_000 or not 0 < t.seconds < 253_402_300_800:  # year 9999
        raise InvalidArgument(field, "must be a valid time (seconds since 1970, nanos 0..1e9)")
    return t.seconds + t.nanos / 1e9


def token(field: str, value: int) -> int:
    """An offer token (positive)."""
    if value <= 0:
        raise InvalidArgument(field, "required: the offer's token (a positive number)")
    return value


# --- agents ---------------------------------------------------------------------------


def skills_from_pb(field: str, skills: Iterable[pb.Skill]) -> dict[str, int]:
    """Skills, unique and valid."""
    result: dict[str, int] = {}
    for i, s in enumerate(skills):
        name = check_name(f"{field}[{i}].skill", s.skill)
        if name in result:
            raise InvalidArgument(f"{field}[{i}].skill", f"duplicate skill {name!r}")
        result[name] = check_level(f"{field}[{i}].proficiency", s.proficiency)
    if len(result) > MAX_SKILLS:
        raise InvalidArgument(field, f"at most {MAX_SKILLS} skills")
    return result


def capacity_from_pb(field: str, caps: Iterable[pb.ChannelCapacity]) -> dict[Channel, int]:
    """Capacities per channel, unique and 0..50."""
    result: dict[Channel, int] = {}
    for i, cap in enumerate(caps):
        ch = channel(f"{field}[{i}].channel", cap.channel)
        if ch in result:
            raise InvalidArgument(f"{field}[{i}].channel", f"duplicate channel {ch.value}")
        if not 0 <= cap.max_contacts <= 50:
            raise InvalidArgument(f"{field}[{i}].max_contacts", "must be 0..50")
        result[ch] = cap.max_contacts
    return result


def groups_from_pb(field: str, names: Iterable[str]) -> frozenset[str]:
    """Agent group names, validated: names as skills, unique, at most MAX_GROUPS."""
    result: list[str] = []
    for i, name in enumerate(names):
        check_name(f"{field}[{i}]", name)
        if name in result:
            raise InvalidArgument(f"{field}[{i}]", f"duplicate group {name}")
        result.append(name)
    if len(result) > MAX_GROUPS:
        raise InvalidArgument(field, f"at most {MAX_GROUPS} groups")
    return frozenset(result)


def agent_from_pb(agent_id: str, msg: pb.Agent) -> Agent:
    """A new agent's profile, validated."""
    if msg.kind not in (pb.AGENT_KIND_UNSPECIFIED, pb.AGENT_KIND_HUMAN, pb.AGENT_KIND_BOT):
        raise InvalidArgument("agent.kind", f"unknown kind {msg.kind}")
    capacity = capacity_from_pb("agent.capacities", msg.capacities)
    if not any(capacity.values()):
        raise InvalidArgument("agent.capacities", "at least one channel with capacity >= 1")
    return Agent(
        id=AgentId(agent_id),
        skills=skills_from_pb("agent.skills", msg.skills),
        capacity=capacity,
        display_name=_text("agent.display_name", msg.display_name, 128),
        kind=AgentKind.BOT if msg.kind == pb.AGENT_KIND_BOT else AgentKind.HUMAN,
        groups=groups_from_pb("agent.groups", msg.groups),
    )


def agent_to_pb(tenant: TenantId, a: Agent) -> pb.Agent:
    """The API view of an agent."""
    msg = pb.Agent(
        name=f"tenants/{tenant}/agents/{a.id}",
        display_name=a.display_name,
        kind=pb.AGENT_KIND_BOT if a.kind is AgentKind.BOT else pb.AGENT_KIND_HUMAN,
        skills=[pb.Skill(skill=s, proficiency=lvl) for s, lvl in sorted(a.skills.items())],
        capacities=[
            pb.ChannelCapacity(channel=CHANNEL_PB[ch], max_contacts=n)
            for ch, n in sorted(a.capacity.items())
        ],
        state=STATE_PB[a.state],
        away_reason=a.away_reason,
        load=[
            pb.ChannelLoad(channel=CHANNEL_PB[ch], contacts=n)
            for ch, n in sorted(a.load.items())
            if n
        ],
        etag=str(a.version),
        missed_offers=a.missed_offers,
        groups=sorted(a.groups),
    )
    for field, s in (("state_time", a.state_since), ("idle_since", a.idle_since)):
        ts = timestamp(int(s * 1000))
        if ts is not None:
            getattr(msg, field).CopyFrom(ts)
    return msg


def agent_state(field: str, value: int, allowed: Iterable[AgentState]) -> AgentState:
    """An agent state enum among `allowed`."""
    state = STATES.get(value)
    allowed = tuple(allowed)
    if state is None or state not in allowed:
        names = ", ".join(s.name for s in allowed)
        raise InvalidArgument(field, f"must be one of {names}")
    return state


# --- rules ----------------------------------------------------------------------------


def rule_from_pb(issue: str, msg: pb.RoutingRule) -> Rule:
    """A rule, validated (field paths as in the request)."""
    skills: dict[str, int] = {}
    for i, req in enumerate(msg.required_skills):
        name = check_name(f"routing_rule.required_skills[{i}].skill", req.skill)
        skills[name] = check_level(
            f"routing_rule.required_skills[{i}].min_proficiency", req.min_proficiency
        )
    if not skills:
        raise InvalidArgument("routing_rule.required_skills", "at least one required skill")
    targets: dict[Channel, float] = {}
    for i, t in enumerate(msg.answer_targets):
        ch = channel(f"routing_rule.answer_targets[{i}].channel", t.channel)
        targets[ch] = seconds(
            f"routing_rule.answer_targets[{i}].answer_target", t.answer_target, allow_zero=False
        )
    steps = []
    for i, step in enumerate(msg.relaxation_steps):
        levels: dict[str, int] = {}
        for j, req in enumerate(step.skills):
            where = f"routing_rule.relaxation_steps[{i}].skills[{j}]"
            levels[check_name(f"{where}.skill", req.skill)] = check_level(
                f"{where}.min_proficiency", req.min_proficiency, allow_zero=True
            )
        steps.append(step_from_pb(f"routing_rule.relaxation_steps[{i}]", step, levels))
    agent_groups = groups_from_pb("routing_rule.agent_groups", msg.agent_groups)
    w = msg.weights
    defaults = Weights()
    weights = Weights(
        proficiency=_weight("proficiency", w, defaults.proficiency),
        idle=_weight("idle", w, defaults.idle),
        occupancy=_weight("occupancy", w, defaults.occupancy),
        affinity=_weight("affinity", w, defaults.affinity),
        idle_horizon_s=seconds("routing_rule.weights.idle_horizon", w.idle_horizon, allow_zero=True)
        or defaults.idle_horizon_s,
    )
    service_level = msg.service_level or 0.8
    if not math.isfinite(service_level) or not 0 < service_level <= 1:
        raise InvalidArgument("routing_rule.service_level", "must be in (0, 1]")
    repeat = msg.repeat_contacts
    return Rule(
        issue=issue,
        skills=skills,
        service_level=service_level,
        answer_target_s=targets,
        steps=tuple(steps),
        weights=weights,
        require_language=msg.require_language,
        description=_text("routing_rule.description", msg.description, 512),
        affinity_wait_s=seconds("routing_rule.affinity_wait", msg.affinity_wait),
        repeat_window_s=seconds("routing_rule.repeat_contacts.window", repeat.window) or 86_400.0,
        repeat_priority_boost=repeat.priority_boost,
        repeat_min_proficiency=repeat.min_proficiency,
        bot_first=msg.bot_first,
        agent_groups=agent_groups,
    )


def step_from_pb(where: str, step: pb.RelaxationStep, levels: dict[str, int]) -> RelaxationStep:
    """A relaxation step with its queue-state conditions (checked by ``validate_rule``)."""
    over = None
    if step.HasField("expected_wait_over"):
        over = seconds(f"{where}.expected_wait_over", step.expected_wait_over)
    below = None
    if step.HasField("service_level_below"):
        below = float(step.service_level_below)
        if not math.isfinite(below):
            raise InvalidArgument(f"{where}.service_level_below", "must be a number in (0, 1]")
    at_most = step.eligible_agents_at_most if step.HasField("eligible_agents_at_most") else None
    return RelaxationStep(
        seconds(f"{where}.after", step.after),
        levels,
        expected_wait_over_s=over,
        service_level_below=below,
        eligible_at_most=at_most,
        add_groups=groups_from_pb(f"{where}.add_agent_groups", step.add_agent_groups),
    )


def step_to_pb(step: RelaxationStep) -> pb.RelaxationStep:
    """The API view of a relaxation step."""
    msg = pb.RelaxationStep(
        after=duration(step.after_s),
        skills=[
            pb.SkillRequirement(skill=s, min_proficiency=lvl)
            for s, lvl in sorted(step.min_proficiency.items())
        ],
        add_agent_groups=sorted(step.add_groups),
    )
    if step.expected_wait_over_s is not None:
        msg.expected_wait_over.CopyFrom(duration(step.expected_wait_over_s))
    if step.service_level_below is not None:
        msg.service_level_below = step.service_level_below
    if step.eligible_at_most is not None:
        msg.eligible_agents_at_most = step.eligible_at_most
    return msg


def _weight(name: str, w: pb.ScoringWeights, default: float) -> float:
    if not w.HasField(name):  # type: ignore[arg-type,unused-ignore]
        return default
    value = float(getattr(w, name))
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise InvalidArgument(f"routing_rule.weights.{name}", "must be a number 0..100")
    return value


def rule_to_pb(tenant: TenantId, r: Rule) -> pb.RoutingRule:
    """The API view of a rule."""
    w = r.weights
    return pb.RoutingRule(
        name=f"tenants/{tenant}/routingRules/{r.issue}",
        description=r.description,
        required_skills=[
            pb.SkillRequirement(skill=s, min_proficiency=lvl) for s, lvl in sorted(r.skills.items())
        ],
        service_level=r.service_level,
        answer_targets=[
            pb.ChannelTarget(channel=CHANNEL_PB[ch], answer_target=duration(s))
            for ch, s in sorted(r.answer_target_s.items())
        ],
        relaxation_steps=[step_to_pb(step) for step in r.steps],
        weights=pb.ScoringWeights(
            proficiency=w.proficiency,
            idle=w.idle,
            occupancy=w.occupancy,
            affinity=w.affinity,
            idle_horizon=duration(w.idle_horizon_s),
        ),
        require_language=r.require_language,
        affinity_wait=duration(r.affinity_wait_s),
        repeat_contacts=pb.RepeatContactPolicy(
            window=duration(r.repeat_window_s),
            priority_boost=r.repeat_priority_boost,
            min_proficiency=r.repeat_min_proficiency,
        ),
        bot_first=r.bot_first,
        agent_groups=sorted(r.agent_groups),
    )


def skill_to_pb(tenant: TenantId, v: SkillView) -> pb.RoutingSkill:
    """The API view of a skill of the catalogue."""
    return pb.RoutingSkill(
        name=f"tenants/{tenant}/routingSkills/{v.skill}",
        description=v.description,
        declared=v.declared,
        agent_count=v.agent_count,
        rule_count=v.rule_count,
    )


def explanation_to_pb(tenant: TenantId, e: Mapping[str, Any]) -> pb.RoutingExplanation:
    """The API view of a stored routing explanation (``router.explain``)."""

    def candidate(c: Mapping[str, Any]) -> pb.ExplanationCandidate:
        return pb.ExplanationCandidate(
            agent=f"tenants/{tenant}/agents/{c['agent']}",
            score=float(c["score"]),
            components={k: float(v) for k, v in c["components"].items()},
            declined_before=bool(c.get("declined")),
        )

    return pb.RoutingExplanation(
        contact=f"tenants/{tenant}/contacts/{e['contact']}",
        agent=f"tenants/{tenant}/agents/{e['agent']}",
        decide_time=timestamp(int(e["t_ms"])),
        waited_seconds=float(e["waited_s"]),
        chosen=candidate(e["chosen"]),
        candidates=[candidate(c) for c in e.get("candidates", ())],
        runner_up=f"tenants/{tenant}/agents/{e['runner_up']}" if e.get("runner_up") else "",
        considered=int(e["considered"]),
        eligible=int(e["eligible"]),
        relaxation_steps=[int(i) for i in e.get("steps", ())],
        required_skills=[
            pb.SkillRequirement(skill=s, min_proficiency=int(lvl))
            for s, lvl in sorted(e.get("required", {}).items())
        ],
        joint=bool(e.get("joint")),
        history={str(k): str(v) for k, v in e.get("history", {}).items()},
        signals={str(k): float(v) for k, v in e.get("signals", {}).items()},
        summary=str(e.get("summary", "")),
        agent_groups=[str(g) for g in e.get("groups", ())],
    )


# --- audit, keys, figures ---------------------------------------------------------------


def audit_to_pb(tenant: TenantId, e: AuditRecord) -> pb.AuditEvent:
    """One audit event."""
    msg = pb.AuditEvent(
        name=f"tenants/{tenant}/auditEvents/{e.id}",
        actor=e.actor,
        action=e.action,
        target=e.target,
        before=e.before,
        after=e.after,
    )
    ts = timestamp(e.time_ms)
    if ts is not None:
        msg.time.CopyFrom(ts)
    return msg


def api_key_to_pb(k: ApiKeyView) -> pb.ApiKey:
    """An API key's visible part."""
    msg = pb.ApiKey(
        name=f"tenants/{k.tenant}/apiKeys/{k.key_id}",
        role=ROLE_PB[k.role],
        agent_id=k.agent_id,
        display_name=k.display_name,
        prefix=k.prefix,
    )
    for field, s in (("create_time", k.create_s), ("revoke_time", k.revoke_s)):
        ts = timestamp(int(s * 1000))
        if ts is not None:
            getattr(msg, field).CopyFrom(ts)
    return msg


def role(field: str, value: int) -> Role:
    """A role enum, required."""
    if value not in ROLES:
        raise InvalidArgument(field, "required: PLATFORM, AGENT, SUPERVISOR, PLANNER or ADMIN")
    return ROLES[value]


def page_size(field: str, value: int) -> int:
    """A page size (0: default 100)."""
    if value < 0 or value > 1000:
        raise InvalidArgument(field, "must be 0..1000")
    return value or 100


def wait_fields(w: WaitEstimate) -> dict[str, object]:
    """Fields of a WaitEstimate message (expected_wait unset when unknown)."""
    fields: dict[str, object] = {
        "contacts_ahead": w.ahead,
        "eligible_agents": w.slots,
        "average_handle_time": duration(w.aht_s),
        "method": w.method,
    }
    if w.wait_s is not None:
        fields["expected_wait"] = duration(w.wait_s)
    return fields


def live_figures_to_pb(figures: QueueFigures, rows: Iterable[ChannelRow]) -> contact_pb.LiveFigures:
    """One push of WatchQueueFigures."""
    reply = contact_pb.LiveFigures(waiting=figures.waiting)
    reply.read_time.FromMilliseconds(figures.read_ms)
    for v in figures.views:
        row = reply.views.add(
            issue=v.issue,
            channel=CHANNEL_PB[v.channel],
            waiting=v.waiting,
            answered=v.answered,
            answered_in_target=v.answered_in_target,
            abandoned=v.abandoned,
            service_level=v.service_level,
            eligible_agents=v.eligible_available,
        )
        row.oldest_wait.CopyFrom(duration(v.oldest_wait_s))
        if v.estimate.wait_s is not None:
            row.expected_wait.CopyFrom(duration(v.estimate.wait_s))
        if v.aht_s is not None:
            row.average_handle_time.CopyFrom(duration(v.aht_s))
    for r in rows:
        reply.channels.add(
            channel=CHANNEL_PB[r.channel],
            waiting=r.waiting,
            service_level=r.service_level,
            service_level_target=r.service_level_target,
            answered=r.answered,
            abandoned=r.abandoned,
            channel_switch_rate=r.channel_switch_rate,
            repeat_contact_rate=r.repeat_contact_rate,
            first_contact_resolution=r.first_contact_resolution,
            satisfaction=r.satisfaction,
            satisfaction_count=r.satisfaction_count,
            bot_containment=r.bot_containment,
        )
    return reply
