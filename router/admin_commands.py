"""The supervisor and admin commands themselves: each is one or a few blocking gRPC
calls, then a rich table or line (or JSON with ``--json``). Parsing and error reporting
are ``router.admin_cli``'s.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from rich.console import Console, RenderableType

from router import cli_render as render
from router.admin_specs import channel_pb, read_rules_file
from router.client import CALL_TIMEOUT_S, Connection
from router.pb.omniroute.v1 import admin_service_pb2 as admin_pb
from router.pb.omniroute.v1 import admin_service_pb2_grpc as admin_grpc
from router.pb.omniroute.v1 import agent_service_pb2 as agent_pb
from router.pb.omniroute.v1 import agent_service_pb2_grpc as agent_grpc
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import contact_service_pb2_grpc as contact_grpc
from router.pb.omniroute.v1 import resources_pb2 as pb
from router.pb.omniroute.v1 import supervisor_service_pb2 as sup_pb
from router.pb.omniroute.v1 import supervisor_service_pb2_grpc as sup_grpc


class UsageError(Exception):
    """Arguments that parse but do not make sense together (exit 2)."""


@dataclass
class Call:
    """What a command needs: the parsed arguments, the connection and its channel."""

    ns: argparse.Namespace
    conn: Connection
    channel: grpc.Channel
    console: Console

    @property
    def sup(self) -> sup_grpc.SupervisorServiceStub:
        """Supervisor stub."""
        return sup_grpc.SupervisorServiceStub(self.channel)

    def kw(self) -> dict[str, Any]:
        """Keyword arguments of every call: the key and a deadline."""
        return {"metadata": self.conn.metadata, "timeout": CALL_TIMEOUT_S}

    def agent(self, agent_id: str) -> str:
        """An agent's resource name."""
        return self.conn.name("agents", agent_id)

    def show(self, data: Message | dict[str, Any], view: RenderableType) -> int:
        """Print `view`, or `data` as JSON with ``--json``."""
        if self.ns.json:
            obj = MessageToDict(data) if isinstance(data, Message) else data
            print(json.dumps(obj, indent=2), flush=True)
        else:
            self.console.print(view)
        return 0


Handler = Callable[[Call], int]


# --- agents and skills ------------------------------------------------------------------


def _every_page(c: Call, method: Any, request: Callable[[str], Any], field: str) -> list[Any]:
    """Every item of a paged List method: `request(token)` builds each page's request and
    `field` names the items in the reply."""
    found: list[Any] = []
    token = ""
    while True:
        reply = method(request(token), **c.kw())
        found.extend(getattr(reply, field))
        token = reply.next_page_token
        if not token:
            return found


def agents_list(c: Call) -> int:
    """``agents list``: every agent (all pages), optionally by state or skill."""
    state = f"AGENT_STATE_{c.ns.state.upper()}" if c.ns.state else None
    agents: list[pb.Agent] = _every_page(
        c,
        c.sup.ListAgents,
        lambda token: sup_pb.ListAgentsRequest(
            parent=c.conn.parent,
            page_size=1000,
            page_token=token,
            state=state,
            skill=c.ns.skill or "",
        ),
        "agents",
    )
    data = sup_pb.ListAgentsResponse(agents=agents, total_size=len(agents))
    return c.show(data, render.agents_table(agents, f"Agents ({len(agents)})"))


def agents_show(c: Call) -> int:
    """``agents show ID``: one agent with live state and load."""
    agent = c.sup.GetAgent(sup_pb.GetAgentRequest(name=c.agent(c.ns.id)), **c.kw())
    return c.show(agent, render.agent_table(agent))


def agents_create(c: Call) -> int:
    """``agents create ID``: a new agent, signed out."""
    agent = pb.Agent(
        display_name=c.ns.name or "",
        kind=pb.AGENT_KIND_BOT if c.ns.bot else pb.AGENT_KIND_HUMAN,
        skills=c.ns.skill or [],
        capacities=c.ns.capacity or [],
        groups=c.ns.group or [],
    )
    request = sup_pb.CreateAgentRequest(parent=c.conn.parent, agent_id=c.ns.id, agent=agent)
    created = c.sup.CreateAgent(request, **c.kw())
    return c.show(created, render.agent_table(created))


def agents_update(c: Call) -> int:
    """``agents update ID``: replace the named fields (display name, skills, capacities,
    groups)."""
    agent = pb.Agent(name=c.agent(c.ns.id), etag=c.ns.etag or "")
    paths = []
    if c.ns.name is not None:
        agent.display_name = c.ns.name
        paths.append("display_name")
    if c.ns.skill:
        agent.skills.extend(c.ns.skill)
        paths.append("skills")
    if c.ns.capacity:
        agent.capacities.extend(c.ns.capacity)
        paths.append("capacities")
    if c.ns.group and c.ns.no_groups:
        raise UsageError("give --group or --no-groups, not both")
    if c.ns.group or c.ns.no_groups:
        agent.groups.extend(c.ns.group or [])
        paths.append("groups")
    if not paths:
        raise UsageError("nothing to update: give --name, --skill, --capacity or --group")
    request = sup_pb.UpdateAgentRequest(agent=agent, update_mask=FieldMask(paths=paths))
    updated = c.sup.UpdateAgent(request, **c.kw())
    return c.show(updated, render.agent_table(updated))


def agents_delete(c: Call) -> int:
    """``agents delete ID``: delete a signed-out agent."""
    reply = c.sup.DeleteAgent(sup_pb.DeleteAgentRequest(name=c.agent(c.ns.id)), **c.kw())
    return c.show(reply, f"deleted agent {c.ns.id}")


def agents_state(c: Call) -> int:
    """``agents state ID STATE``: set available or away, or sign out."""
    stub = agent_grpc.AgentServiceStub(c.channel)
    name = c.agent(c.ns.id)
    if c.ns.state == "signed_out":
        agent = stub.SignOut(agent_pb.SignOutRequest(name=name), **c.kw())
    else:
        state = f"AGENT_STATE_{c.ns.state.upper()}"
        request = agent_pb.SetAgentStateRequest(
            name=name, state=state, away_reason=c.ns.reason or ""
        )
        agent = stub.SetAgentState(request, **c.kw())
    return c.show(agent, f"agent {c.ns.id}: {render.state_text(agent)}")


def skills_set(c: Call) -> int:
    """``skills set AGENT SKILL LEVEL``: add a skill or change its proficiency."""
    skill = pb.Skill(skill=c.ns.skill, proficiency=c.ns.level)
    request = sup_pb.SetSkillRequest(agent=c.agent(c.ns.agent), skill=skill)
    agent = c.sup.SetSkill(request, **c.kw())
    line = (
        f"agent {c.ns.agent}: {c.ns.skill}={c.ns.level}; skills {render.skills_text(agent.skills)}"
    )
    return c.show(agent, line)


def skills_remove(c: Call) -> int:
    """``skills remove AGENT SKILL``."""
    request = sup_pb.RemoveSkillRequest(agent=c.agent(c.ns.agent), skill=c.ns.skill)
    agent = c.sup.RemoveSkill(request, **c.kw())
    line = f"agent {c.ns.agent}: removed {c.ns.skill}; skills {render.skills_text(agent.skills)}"
    return c.show(agent, line)


def skills_define(c: Call) -> int:
    """``skills define SKILL``: declare a skill so rules may require it before agents do."""
    request = sup_pb.CreateRoutingSkillRequest(
        parent=c.conn.parent,
        routing_skill_id=c.ns.skill,
        routing_skill=pb.RoutingSkill(description=c.ns.description or ""),
    )
    skill = c.sup.CreateRoutingSkill(request, **c.kw())
    return c.show(skill, render.skills_table([skill], "Skill declared"))


def skills_list(c: Call) -> int:
    """``skills list``: the catalogue (declared, held by agents, named by rules)."""
    skills: list[pb.RoutingSkill] = _every_page(
        c,
        c.sup.ListRoutingSkills,
        lambda token: sup_pb.ListRoutingSkillsRequest(
            parent=c.conn.parent, page_size=1000, page_token=token
        ),
        "routing_skills",
    )
    data = sup_pb.ListRoutingSkillsResponse(routing_skills=skills)
    return c.show(data, render.skills_table(skills, f"Skills ({len(skills)})"))


def skills_undefine(c: Call) -> int:
    """``skills undefine SKILL``: withdraw a declaration."""
    name = c.conn.name("routingSkills", c.ns.skill)
    skill = c.sup.DeleteRoutingSkill(sup_pb.DeleteRoutingSkillRequest(name=name), **c.kw())
    return c.show(skill, f"withdrew the declaration of skill {c.ns.skill}")


# --- rules --------------------------------------------------------------------------------


def rules_list(c: Call) -> int:
    """``rules list``: every routing rule."""
    rules: list[pb.RoutingRule] = _every_page(
        c,
        c.sup.ListRoutingRules,
        lambda token: sup_pb.ListRoutingRulesRequest(
            parent=c.conn.parent, page_size=1000, page_token=token
        ),
        "routing_rules",
    )
    data = sup_pb.ListRoutingRulesResponse(routing_rules=rules)
    return c.show(data, render.rules_table(rules))


def rules_show(c: Call) -> int:
    """``rules show ISSUE``."""
    name = c.conn.name("routingRules", c.ns.issue)
    rule = c.sup.GetRoutingRule(sup_pb.GetRoutingRuleRequest(name=name), **c.kw())
    return c.show(rule, render.rule_table(rule))


def _rule_from_flags(ns: argparse.Namespace) -> pb.RoutingRule:
    """A rule from ``rules put ISSUE --skill ...`` flags."""
    if not ns.issue or not ns.skill:
        raise UsageError("rules put needs ISSUE and at least one --skill, or --file RULES.yaml")
    rule = pb.RoutingRule(
        description=ns.description or "",
        required_skills=ns.skill,
        service_level=ns.sl or 0.0,
        answer_targets=ns.target or [],
        relaxation_steps=ns.step or [],
        require_language=ns.require_language,
        bot_first=ns.bot_first,
        agent_groups=ns.group or [],
    )
    if ns.weights is not None:
        rule.weights.CopyFrom(ns.weights)
    return rule


def rules_put(c: Call) -> int:
    """``rules put``: create or replace one rule from flags, or several from a file."""
    ns = c.ns
    if ns.file is not None:
        if ns.issue or ns.skill or ns.step or ns.target or ns.weights or ns.sl or ns.group:
            raise UsageError("rules put --file takes no ISSUE or rule flags")
        items = [(r.issue, r.rule, f"{ns.file}:{r.line}") for r in read_rules_file(ns.file)]
    else:
        items = [(ns.issue, _rule_from_flags(ns), "")]
    saved: list[pb.RoutingRule] = []
    for issue, rule, where in items:
        rule.name = c.conn.name("routingRules", issue)
        request = sup_pb.UpdateRoutingRuleRequest(routing_rule=rule, allow_missing=True)
        try:
            saved.append(c.sup.UpdateRoutingRule(request, **c.kw()))
        except grpc.RpcError as exc:
            if where and isinstance(exc, grpc.Call):
                setattr(exc, "where", f"rule {issue!r} ({where})")  # noqa: B010
            raise
    data = sup_pb.ListRoutingRulesResponse(routing_rules=saved)
    return c.show(data, render.rules_table(saved))


def rules_delete(c: Call) -> int:
    """``rules delete ISSUE``."""
    name = c.conn.name("routingRules", c.ns.issue)
    reply = c.sup.DeleteRoutingRule(sup_pb.DeleteRoutingRuleRequest(name=name), **c.kw())
    return c.show(reply, f"deleted routing rule {c.ns.issue}")


# --- queues, audit, keys ------------------------------------------------------------------


def queues(c: Call) -> int:
    """``queues``: live figures per issue and channel, once or every ``--watch`` seconds."""
    stub = contact_grpc.ContactServiceStub(c.channel)
    channel = channel_pb(c.ns.channel) if c.ns.channel else None
    request = contact_pb.GetQueueStatsRequest(
        parent=c.conn.parent, issue=c.ns.issue or "", channel=channel
    )
    if c.ns.watch is None:
        stats = stub.GetQueueStats(request, **c.kw())
        return c.show(stats, render.queue_table(stats))
    try:
        while True:
            stats = stub.GetQueueStats(request, **c.kw())
            if c.ns.json:
                print(json.dumps(MessageToDict(stats)), flush=True)
            else:
                c.console.clear()
                c.console.print(render.queue_table(stats))
                c.console.print(f"refreshing every {c.ns.watch:g}s; Ctrl-C stops")
            time.sleep(c.ns.watch)
    except KeyboardInterrupt:
        return 0


def audit(c: Call) -> int:
    """``audit``: the newest ``--limit`` audit events, optionally about one resource."""
    target = c.ns.resource or ""
    if target and not target.startswith("tenants/"):
        target = f"{c.conn.parent}/{target}"
    events: list[pb.AuditEvent] = []
    token = ""
    while len(events) < c.ns.limit:
        request = sup_pb.ListAuditEventsRequest(
            parent=c.conn.parent,
            page_size=min(1000, c.ns.limit - len(events)),
            page_token=token,
            target=target,
        )
        reply = c.sup.ListAuditEvents(request, **c.kw())
        events.extend(reply.audit_events)
        token = reply.next_page_token
        if not token:
            break
    data = sup_pb.ListAuditEventsResponse(audit_events=events)
    return c.show(data, render.audit_table(events))


def keys_create(c: Call) -> int:
    """``keys create --role R``: a new key; its secret is printed once."""
    stub = admin_grpc.AdminServiceStub(c.channel)
    key = pb.ApiKey(
        role=f"ROLE_{c.ns.new_role.upper()}",
        agent_id=c.ns.agent or "",
        display_name=c.ns.name or "",
    )
    reply = stub.CreateApiKey(
        admin_pb.CreateApiKeyRequest(parent=c.conn.parent, api_key=key), **c.kw()
    )
    line = (
        f"created {c.ns.new_role} key {reply.api_key.name}\nsecret (shown only now): {reply.secret}"
    )
    return c.show(reply, line)


def keys_list(c: Call) -> int:
    """``keys list``: the tenant's keys, without secrets."""
    stub = admin_grpc.AdminServiceStub(c.channel)
    reply = stub.ListApiKeys(admin_pb.ListApiKeysRequest(parent=c.conn.parent), **c.kw())
    return c.show(reply, render.keys_table(reply.api_keys))


def keys_revoke(c: Call) -> int:
    """``keys revoke KEY_ID``."""
    stub = admin_grpc.AdminServiceStub(c.channel)
    name = c.ns.key_id
    if not name.startswith("tenants/"):
        name = c.conn.name("apiKeys", name)
    key = stub.RevokeApiKey(admin_pb.RevokeApiKeyRequest(name=name), **c.kw())
    return c.show(key, f"revoked key {key.name}")
