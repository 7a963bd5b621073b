"""Stored records to domain values and back: the field layout of the hashes and JSON in
``queues.keys``. Pure functions; ``RedisState`` reads and writes, this module interprets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from queues.state import AgentRecord
from router.domain import (
    Agent,
    AgentId,
    AgentKind,
    AgentState,
    Channel,
    Contact,
    ContactId,
    ContactStatus,
    CustomerId,
)
from router.rules import RelaxationStep, Rule, Weights


@dataclass(frozen=True, slots=True)
class ContactRecord:
    """A contact as stored: the routing view plus its life (status, agent, times)."""

    contact: Contact
    status: ContactStatus
    target_ms: int
    agent_id: AgentId | None = None
    token: int = 0
    offered_ms: int = 0
    deadline_ms: int = 0
    assigned_ms: int = 0
    closed_ms: int = 0
    outcome: str = ""
    note: str = ""
    reason: str = ""
    identities: tuple[tuple[str, str], ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)
    #: W3C traceparent of the submit's span ('' when it was not traced).
    trace_parent: str = ""
    #: The bot that escalated it to people (None: no bot did), when, and its summary.
    escalated_by: AgentId | None = None
    escalated_ms: int = 0
    bot_summary: str = ""
    #: The customer asked to be called back: when, and the time chosen (0: when the
    #: contact's turn comes).
    callback: bool = False
    callback_requested_ms: int = 0
    callback_ms: int = 0
    #: The customer's satisfaction reported on completion, 1-5 (0: none).
    satisfaction: int = 0

    @property
    def id(self) -> ContactId:
        """The contact id."""
        return self.contact.id


def contact_fields(contact: Contact, identities: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Hash fields of a new contact (the enqueue script adds arrival, order and status)."""
    fields = {
        "ch": contact.channel.value,
        "issue": contact.issue,
        "prio": str(contact.priority),
        "lang": contact.language,
        "cust": contact.customer_id or "",
        "attrs": json.dumps(dict(contact.attributes), sort_keys=True),
        "ids": json.dumps([list(i) for i in identities]),
        "last_agent": contact.last_agent_id or "",
        "known": ",".join(contact.known_agent_ids),
        "repeat": contact.repeat,
    }
    if contact.bot_first:
        fields["bot"] = "1"
    return fields


def _int(fields: Mapping[str, str], name: str) -> int:
    value = fields.get(name)
    return int(value) if value else 0


def parse_contact(contact_id: str, fields: Mapping[str, str]) -> ContactRecord:
    """The record of a stored contact hash (which must not be empty)."""
    arrived_ms = _int(fields, "arrived_ms")
    declined = fields.get("declined", "")
    known = fields.get("known", "")
    contact = Contact(
        id=ContactId(contact_id),
        channel=Channel(fields["ch"]),
        issue=fields["issue"],
        arrived_at=arrived_ms / 1000.0,
        priority=_int(fields, "prio"),
        language=fields.get("lang", ""),
        customer_id=CustomerId(fields["cust"]) if fields.get("cust") else None,
        last_agent_id=AgentId(fields["last_agent"]) if fields.get("last_agent") else None,
        known_agent_ids=tuple(AgentId(a) for a in known.split(",") if a),
        declined_by=tuple(AgentId(a) for a in declined.split(",") if a),
        repeat=fields.get("repeat", ""),
        bot_first=fields.get("bot") == "1",
    )
    ids = json.loads(fields.get("ids") or "[]")
    return ContactRecord(
        contact=contact,
        status=ContactStatus(fields["status"]),
        target_ms=_int(fields, "target_ms"),
        agent_id=AgentId(fields["agent"]) if fields.get("agent") else None,
        token=_int(fields, "token"),
        offered_ms=_int(fields, "offered_ms"),
        deadline_ms=_int(fields, "deadline_ms"),
        assigned_ms=_int(fields, "assigned_ms"),
        closed_ms=_int(fields, "closed_ms"),
        outcome=fields.get("outcome", ""),
        note=fields.get("note", ""),
        reason=fields.get("reason", ""),
        identities=tuple((str(k), str(v)) for k, v in ids),
        attributes=json.loads(fields.get("attrs") or "{}"),
        trace_parent=fields.get("tp", ""),
        escalated_by=AgentId(fields["esc_bot"]) if fields.get("esc_bot") else None,
        escalated_ms=_int(fields, "esc_ms"),
        bot_summary=fields.get("esc_sum", ""),
        callback=fields.get("cb") == "1",
        callback_requested_ms=_int(fields, "cb_req_ms"),
        callback_ms=_int(fields, "cb_ms"),
        satisfaction=_int(fields, "csat"),
    )


def agent_profile(
    display_name: str,
    kind: AgentKind,
    skills: Mapping[str, int],
    capacity: Mapping[Channel, int],
    groups: AbstractSet[str] = frozenset(),
) -> dict[str, Any]:
    """The profile JSON that write_agent stores."""
    return {
        "display_name": display_name,
        "kind": kind.value,
        "skills": dict(sorted(skills.items())),
        "capacity": {ch.value: n for ch, n in sorted(capacity.items())},
        "groups": sorted(groups),
    }


def _json_list(raw: str | None) -> list[str]:
    value = json.loads(raw or "[]")
    # cjson writes an empty table as {}: none.
    return [str(v) for v in value] if isinstance(value, list) else []


def _json_map(raw: str | None) -> dict[str, Any]:
    value = json.loads(raw or "{}")
    # cjson writes an empty table as {} or []; both mean "none".
    return dict(value) if isinstance(value, dict) else {}


def parse_agent(agent_id: str, record: AgentRecord) -> Agent:
    """The domain agent of a stored agent record."""
    f = record.fields
    capacity = {Channel(ch): int(n) for ch, n in _json_map(f.get("capacity")).items()}
    return Agent(
        id=AgentId(agent_id),
        skills={str(s): int(level) for s, level in _json_map(f.get("skills")).items()},
        capacity=capacity,
        load={Channel(ch): n for ch, n in record.load.items() if n},
        state=AgentState(f.get("state", AgentState.SIGNED_OUT.value)),
        idle_since=_int(f, "idle_since_ms") / 1000.0,
        version=_int(f, "ver"),
        display_name=f.get("display_name", ""),
        away_reason=f.get("away_reason", ""),
        kind=AgentKind(f.get("kind") or AgentKind.HUMAN.value),
        state_since=_int(f, "state_ms") / 1000.0,
        missed_offers=_int(f, "missed"),
        groups=frozenset(_json_list(f.get("groups"))),
    )


def rule_to_json(rule: Rule) -> str:
    """Stored form of a rule."""
    w = rule.weights
    return json.dumps(
        {
            "issue": rule.issue,
            "description": rule.description,
            "skills": dict(rule.skills),
            "service_level": rule.service_level,
            "targets": {ch.value: s for ch, s in rule.answer_target_s.items()},
            "steps": [_step_json(s) for s in rule.steps],
            "affinity_wait_s": rule.affinity_wait_s,
            "repeat": {
                "window_s": rule.repeat_window_s,
                "priority_boost": rule.repeat_priority_boost,
                "min_proficiency": rule.repeat_min_proficiency,
            },
            "weights": {
                "proficiency": w.proficiency,
                "idle": w.idle,
                "occupancy": w.occupancy,
                "affinity": w.affinity,
                "idle_horizon_s": w.idle_horizon_s,
            },
            "require_language": rule.require_language,
            "bot_first": rule.bot_first,
            "agent_groups": sorted(rule.agent_groups),
        },
        sort_keys=True,
    )


def _step_json(step: RelaxationStep) -> dict[str, Any]:
    out: dict[str, Any] = {"after_s": step.after_s, "skills": dict(step.min_proficiency)}
    if step.expected_wait_over_s is not None:
        out["expected_wait_over_s"] = step.expected_wait_over_s
    if step.service_level_below is not None:
        out["service_level_below"] = step.service_level_below
    if step.eligible_at_most is not None:
        out["eligible_at_most"] = step.eligible_at_most
    if step.add_groups:
        out["add_groups"] = sorted(step.add_groups)
    return out


def _step_from_json(s: Mapping[str, Any]) -> RelaxationStep:
    over, below, at_most = (
        s.get("expected_wait_over_s"),
        s.get("service_level_below"),
        s.get("eligible_at_most"),
    )
    return RelaxationStep(
        float(s["after_s"]),
        {str(k): int(v) for k, v in s["skills"].items()},
        expected_wait_over_s=None if over is None else float(over),
        service_level_below=None if below is None else float(below),
        eligible_at_most=None if at_most is None else int(at_most),
        add_groups=frozenset(str(g) for g in s.get("add_groups", ())),
    )


def rule_from_json(raw: str) -> Rule:
    """The rule of its stored form (rules stored before a field existed get its default)."""
    d = json.loads(raw)
    repeat = d.get("repeat") or {}
    return Rule(
        issue=d["issue"],
        skills={str(k): int(v) for k, v in d["skills"].items()},
        service_level=float(d["service_level"]),
        answer_target_s={Channel(k): float(v) for k, v in d["targets"].items()},
        steps=tuple(_step_from_json(s) for s in d["steps"]),
        weights=Weights(**d["weights"]),
        require_language=bool(d["require_language"]),
        description=d.get("description", ""),
        affinity_wait_s=float(d.get("affinity_wait_s", 0.0)),
        repeat_window_s=float(repeat.get("window_s", 86_400.0)),
        repeat_priority_boost=int(repeat.get("priority_boost", 0)),
        repeat_min_proficiency=int(repeat.get("min_proficiency", 0)),
        bot_first=bool(d.get("bot_first", False)),
        agent_groups=frozenset(str(g) for g in d.get("agent_groups", ())),
    )


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One entry of a customer's history."""

    contact_id: str
    channel: Channel
    issue: str
    agent_id: str
    outcome: str
    note: str
    status: str
    time_ms: int
    #: Handled by a bot (the note is its conversation's summary).
    bot: bool = False
    #: The customer's satisfaction, 1-5 (0: none reported).
    satisfaction: int = 0


def history_entry(
    record: ContactRecord, status: ContactStatus, outcome: str, note: str
) -> dict[str, str]:
    """The JSON a closing script appends to the history (it adds ``time_ms``)."""
    c = record.contact
    return {
        "contact": c.id,
        "channel": c.channel.value,
        "issue": c.issue,
        "agent": record.agent_id or "",
        "outcome": outcome,
        "note": note,
        "status": status.value,
    }


def parse_history(raw: str) -> HistoryItem:
    """One stored history entry."""
    d = json.loads(raw)
    return HistoryItem(
        contact_id=d["contact"],
        channel=Channel(d["channel"]),
        issue=d["issue"],
        agent_id=d.get("agent", ""),
        outcome=d.get("outcome", ""),
        note=d.get("note", ""),
        status=d.get("status", ContactStatus.COMPLETED.value),
        time_ms=int(d.get("time_ms", 0)),
        bot=bool(d.get("bot", False)),
        satisfaction=int(d.get("csat", 0)),
    )
