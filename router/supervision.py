"""Supervisor and admin use cases: agents, skills, routing rules, audit, API keys.

Every change goes through one script that re-checks and audits it in the same atomic
step, and bumps the agent's version so that the very next routing decision, on any
replica, sees it (reserve_offer refuses a decision made on an older version).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import structlog

from queues.records import agent_profile, parse_agent, rule_from_json, rule_to_json
from queues.state import RedisState
from router.auth import Role, key_record, new_key_id, new_secret
from router.domain import Agent, AgentId, AgentKind, AgentState, Channel, TenantId
from router.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from router.rules import Rule, check_level, check_name, validate_rule

log = structlog.get_logger(__name__)

_RETRIES = 8


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit event."""

    id: str
    time_ms: int
    actor: str
    action: str
    target: str
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class ApiKeyView:
    """An API key without its secret."""

    tenant: TenantId
    key_id: str
    role: Role
    agent_id: str
    display_name: str
    create_s: float
    revoke_s: float
    prefix: str


@dataclass(frozen=True, slots=True)
class SkillView:
    """One skill of the tenant's catalogue."""

    skill: str
    description: str
    declared: bool
    agent_count: int
    rule_count: int


def agent_name(tenant: TenantId, agent_id: str) -> str:
    """Resource name of an agent."""
    return f"tenants/{tenant}/agents/{agent_id}"


class Supervision:
    """Supervisor and admin use cases of one tenant-aware replica."""

    def __init__(self, state: RedisState) -> None:
        self.state = state

    # --- agents -----------------------------------------------------------------------

    async def get_agent(self, tenant: TenantId, agent_id: AgentId) -> Agent:
        """One agent with live state and load."""
        (record,) = await self.state.read_agents(tenant, [agent_id])
        if record is None:
            raise NotFound(f"agent {agent_id!r} not found")
        return parse_agent(agent_id, record)

    async def create_agent(self, tenant: TenantId, agent: Agent, actor: str) -> Agent:
        """A new agent, signed out."""
        await self.state.register_tenant(tenant)
        result = await self.state.write_agent(
            tenant,
            agent.id,
            "create",
            agent_profile(
                agent.display_name, agent.kind, agent.skills, agent.capacity, agent.groups
            ),
            None,
            actor,
            "CreateAgent",
            agent_name(tenant, agent.id),
        )
        if result.code == -1:
            raise AlreadyExists(f"agent {agent.id!r} already exists")
        log.info("agent_created", tenant=tenant, agent_id=agent.id, actor=actor)
        return await self.get_agent(tenant, agent.id)

    async def list_agents(
        self,
        tenant: TenantId,
        page_size: int,
        page_token: str,
        state: AgentState | None,
        skill: str,
    ) -> tuple[list[Agent], str, int]:
        """A page of agents by id after `page_token`, filtered; and the filtered total."""
        ids = await self.state.agent_ids(tenant)
        records = await self.state.read_agents(tenant, ids)
        matching = [parse_agent(a, r) for a, r in zip(ids, records, strict=True) if r is not None]
        matching = [
            a
            for a in matching
            if (state is None or a.state is state) and (not skill or skill in a.skills)
        ]
        after = [a for a in matching if a.id > page_token] if page_token else matching
        page = after[:page_size]
        next_token = page[-1].id if len(after) > page_size else ""
        return page, next_token, len(matching)

    async def update_agent(
        self,
        tenant: TenantId,
        agent_id: AgentId,
        changes: Mapping[str, Any],
        expected_version: int | None,
        actor: str,
        action: str = "UpdateAgent",
    ) -> Agent:
        """Change display name, skills, capacity or groups (the keys of `changes`), only at
        `expected_version` when given; else retried on concurrent changes."""
        for _ in range(_RETRIES):
            current = await self.get_agent(tenant, agent_id)
            if expected_version is not None and current.version != expected_version:
                raise Conflict(
                    f"agent {agent_id!r} changed: etag {expected_version} is stale, "
                    f"current is {current.version}"
                )
            updated = _apply_changes(current, changes)
            result = await self.state.write_agent(
                tenant,
                agent_id,
                "update",
                agent_profile(
                    updated.display_name,
                    updated.kind,
                    updated.skills,
                    updated.capacity,
                    updated.groups,
                ),
                current.version,
                actor,
                action,
                agent_name(tenant, agent_id),
            )
            if result.ok:
                log.info(
                    "agent_updated",
                    tenant=tenant,
                    agent_id=agent_id,
                    action=action,
                    actor=actor,
                    fields=sorted(changes),
                )
                return await self.get_agent(tenant, agent_id)
            if result.code == -4:
                raise NotFound(f"agent {agent_id!r} not found")
        raise Conflict(f"agent {agent_id!r} changed concurrently too often; retry")

    async def set_skill(
        self, tenant: TenantId, agent_id: AgentId, skill: str, level: int, actor: str
    ) -> Agent:
        """Add a skill or change its proficiency."""
        check_name("skill.skill", skill)
        check_level("skill.proficiency", level)
        return await self._edit_skills(tenant, agent_id, skill, level, actor, "SetSkill")

    async def remove_skill(
        self, tenant: TenantId, agent_id: AgentId, skill: str, actor: str
    ) -> Agent:
        """Remove a skill; NotFound if the agent lacks it."""
        check_name("skill", skill)
        return await self._edit_skills(tenant, agent_id, skill, 0, actor, "RemoveSkill")

    async def _edit_skills(
        self,
        tenant: TenantId,
        agent_id: AgentId,
        skill: str,
        level: int,
        actor: str,
        action: str,
    ) -> Agent:
        for _ in range(_RETRIES):
            current = await self.get_agent(tenant, agent_id)
            skills = dict(current.skills)
            if level == 0:
                if skill not in skills:
                    raise NotFound(f"agent {agent_id!r} has no skill {skill!r}")
                del skills[skill]
            else:
                skills[skill] = level
            try:
                return await self.update_agent(
                    tenant, agent_id, {"skills": skills}, current.version, actor, action
                )
            except Conflict:
                continue
        raise Conflict(f"agent {agent_id!r} changed concurrently too often; retry")

    async def delete_agent(self, tenant: TenantId, agent_id: AgentId, actor: str) -> Agent:
        """Delete a signed-out agent holding nothing."""
        current = await self.get_agent(tenant, agent_id)
        result = await self.state.write_agent(
            tenant,
            agent_id,
            "delete",
            None,
            None,
            actor,
            "DeleteAgent",
            agent_name(tenant, agent_id),
        )
        if result.code == -4:
            raise NotFound(f"agent {agent_id!r} not found")
        if result.code == -3:
            raise Conflict(f"agent {agent_id!r} must be signed out with nothing in hand")
        return current

    # --- rules ------------------------------------------------------------------------

    async def get_rule(self, tenant: TenantId, issue: str) -> Rule:
        """The rule of `issue`."""
        raw = await self.state.read_rule(tenant, issue)
        if raw is None:
            raise NotFound(f"routing rule for issue {issue!r} not found")
        return rule_from_json(raw)

    async def list_rules(self, tenant: TenantId) -> list[Rule]:
        """Every rule, by issue."""
        raw = await self.state.read_rules(tenant)
        return [rule_from_json(raw[i]) for i in sorted(raw)]

    async def write_rule(self, tenant: TenantId, rule: Rule, mode: str, actor: str) -> Rule:
        """Create (mode create), replace (update) or upsert a rule, validated first."""
        validate_rule(rule)
        await self.state.register_tenant(tenant)
        action = "CreateRoutingRule" if mode == "create" else "UpdateRoutingRule"
        result = await self.state.write_rule(
            tenant,
            rule.issue,
            mode,
            rule_to_json(rule),
            actor,
            action,
            f"tenants/{tenant}/routingRules/{rule.issue}",
        )
        if result.code == -1:
            raise AlreadyExists(f"routing rule for issue {rule.issue!r} already exists")
        if result.code == -4:
            raise NotFound(f"routing rule for issue {rule.issue!r} not found")
        if result.code == -9:
            skill = str(result.values[0])
            raise InvalidArgument(
                _skill_field(rule, skill),
                f"unknown skill {skill!r}: no agent holds it, no rule names it and it was "
                "never declared (declare it first: CreateRoutingSkill, "
                "`omniroute skills define`)",
            )
        log.info("rule_written", tenant=tenant, issue=rule.issue, mode=mode, actor=actor)
        return rule

    async def delete_rule(self, tenant: TenantId, issue: str, actor: str) -> Rule:
        """Delete a rule; returns it as it was."""
        result = await self.state.write_rule(
            tenant,
            issue,
            "delete",
            "",
            actor,
            "DeleteRoutingRule",
            f"tenants/{tenant}/routingRules/{issue}",
        )
        if result.code == -4:
            raise NotFound(f"routing rule for issue {issue!r} not found")
        return rule_from_json(str(result.values[0]))

    # --- the skill catalogue ----------------------------------------------------------

    async def create_skill(
        self, tenant: TenantId, skill: str, description: str, actor: str
    ) -> SkillView:
        """Declare `skill`, so that rules may require it before any agent holds it."""
        check_name("routing_skill_id", skill)
        if len(description) > 512:
            raise InvalidArgument("routing_skill.description", "at most 512 characters")
        await self.state.register_tenant(tenant)
        result = await self.state.write_skill(
            tenant, skill, "create", description, actor, "CreateRoutingSkill",
            skill_name(tenant, skill),
        )  # fmt: skip
        if result.code == -1:
            raise AlreadyExists(f"skill {skill!r} is declared already")
        log.info("skill_declared", tenant=tenant, skill=skill, actor=actor)
        return await self.get_skill(tenant, skill)

    async def declare_skills(self, tenant: TenantId, skills: Iterable[str], actor: str) -> None:
        """Declare each of `skills` not declared yet (a set-up script's first step)."""
        for skill in skills:
            with contextlib.suppress(AlreadyExists):
                await self.create_skill(tenant, skill, "", actor)

    async def delete_skill(self, tenant: TenantId, skill: str, actor: str) -> SkillView:
        """Withdraw `skill`'s declaration; refused while a rule needs it to stay known."""
        before = await self.get_skill(tenant, skill)
        result = await self.state.write_skill(
            tenant, skill, "delete", "", actor, "DeleteRoutingSkill", skill_name(tenant, skill)
        )
        if result.code == -4:
            raise NotFound(f"skill {skill!r} is not declared")
        if result.code == -3:
            raise Conflict(
                f"skill {skill!r} is named by {result.values[0]} routing rule(s) and held by "
                "no agent: change those rules first"
            )
        log.info("skill_withdrawn", tenant=tenant, skill=skill, actor=actor)
        return replace(before, declared=False)

    async def get_skill(self, tenant: TenantId, skill: str) -> SkillView:
        """One skill of the catalogue; NotFound if unknown."""
        for view in await self.list_skills(tenant):
            if view.skill == skill:
                return view
        raise NotFound(f"skill {skill!r} is not known")

    async def list_skills(self, tenant: TenantId) -> list[SkillView]:
        """Every known skill, by name."""
        declared, agents, rules = await self.state.read_skills(tenant)
        views = []
        for skill in sorted(set(declared) | set(agents) | set(rules)):
            info = json.loads(declared[skill]) if skill in declared else {}
            views.append(
                SkillView(
                    skill=skill,
                    description=str(info.get("description", "")),
                    declared=skill in declared,
                    agent_count=max(0, int(agents.get(skill, 0))),
                    rule_count=max(0, int(rules.get(skill, 0))),
                )
            )
        return views

    # --- audit ------------------------------------------------------------------------

    async def audit(
        self, tenant: TenantId, page_size: int, page_token: str, target: str
    ) -> tuple[list[AuditRecord], str]:
        """Audit events newest first; `target` filters by resource name."""
        found: list[AuditRecord] = []
        cursor = page_token or None
        while len(found) < page_size:
            rows = await self.state.read_audit(tenant, max(page_size, 200), cursor)
            if not rows:
                cursor = None
                break
            for event_id, f in rows:
                cursor = event_id
                if target and f.get("target") != target and not _names_agent(f, target):
                    continue
                found.append(
                    AuditRecord(
                        id=event_id,
                        time_ms=int(event_id.split("-")[0]),
                        actor=f.get("actor", ""),
                        action=f.get("action", ""),
                        target=f.get("target", ""),
                        before=f.get("before", ""),
                        after=f.get("after", ""),
                    )
                )
                if len(found) == page_size:
                    break
        return found, (cursor or "") if len(found) == page_size else ""

    # --- API keys ---------------------------------------------------------------------

    async def create_api_key(
        self, tenant: TenantId, role: Role, agent_id: str, display_name: str, actor: str
    ) -> tuple[ApiKeyView, str]:
        """A new key; returns its view and the secret (shown once)."""
        key_id = new_key_id()
        secret = new_secret(tenant, key_id)
        record = key_record(role, secret, agent_id, display_name, time.time())
        await self.state.put_api_key(tenant, key_id, record)
        await self.state.append_audit(
            tenant,
            actor,
            "CreateApiKey",
            f"tenants/{tenant}/apiKeys/{key_id}",
            "",
            json.dumps({"role": role.value, "agent_id": agent_id, "prefix": record["prefix"]}),
        )
        return _key_view(tenant, key_id, record), secret

    async def list_api_keys(self, tenant: TenantId) -> list[ApiKeyView]:
        """The tenant's keys, by id, without secrets."""
        records = await self.state.list_api_keys(tenant)
        return [_key_view(tenant, k, records[k]) for k in sorted(records)]

    async def revoke_api_key(self, tenant: TenantId, key_id: str, actor: str) -> ApiKeyView:
        """Revoke a key at once (replicas' caches forget within a second)."""
        record = await self.state.get_api_key(tenant, key_id)
        if record is None:
            raise NotFound(f"API key {key_id!r} not found")
        if not record.get("revoke_s"):
            record["revoke_s"] = time.time()
            await self.state.put_api_key(tenant, key_id, record)
            await self.state.append_audit(
                tenant, actor, "RevokeApiKey", f"tenants/{tenant}/apiKeys/{key_id}", "", "revoked"
            )
            await self.state.publish(tenant, {"ev": "keys"})
        return _key_view(tenant, key_id, record)


def _names_agent(fields: Mapping[str, str], target: str) -> bool:
    # State changes are recorded with the bare agent id as target.
    return target.endswith(f"/agents/{fields.get('target', '')}")


def _key_view(tenant: TenantId, key_id: str, record: Mapping[str, Any]) -> ApiKeyView:
    return ApiKeyView(
        tenant=tenant,
        key_id=key_id,
        role=Role(record["role"]),
        agent_id=str(record.get("agent_id", "")),
        display_name=str(record.get("display_name", "")),
        create_s=float(record.get("create_s", 0)),
        revoke_s=float(record.get("revoke_s", 0)),
        prefix=str(record.get("prefix", "")),
    )


def skill_name(tenant: TenantId, skill: str) -> str:
    """Resource name of a skill of the catalogue."""
    return f"tenants/{tenant}/routingSkills/{skill}"


def _skill_field(rule: Rule, skill: str) -> str:
    """The field of `rule` naming `skill` first (as ``validate_rule`` names fields)."""
    if skill in rule.skills:
        return f"rule.skills[{skill!r}]"
    for i, step in enumerate(rule.steps):
        if skill in step.min_proficiency:
            return f"rule.steps[{i}].skills[{skill!r}]"
    return "rule.skills"


def _apply_changes(agent: Agent, changes: Mapping[str, Any]) -> Agent:
    updated = agent
    if "display_name" in changes:
        updated = replace(updated, display_name=str(changes["display_name"]))
    if "skills" in changes:
        updated = replace(updated, skills=dict(changes["skills"]))
    if "capacity" in changes:
        capacity: Mapping[Channel, int] = changes["capacity"]
        updated = replace(updated, capacity=dict(capacity))
    if "groups" in changes:
        updated = replace(updated, groups=frozenset(changes["groups"]))
    if "kind" in changes:
        raise InvalidArgument("agent.kind", "is immutable")
    if updated.kind not in (AgentKind.HUMAN, AgentKind.BOT):
        raise InvalidArgument("agent.kind", "unknown kind")
    return updated
