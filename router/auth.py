"""API keys, roles and permissions.

A key looks like ``omr_{tenant}_{key id}_{40 hex}{8 hex crc32}``: a recognisable prefix,
the tenant and key id in the clear (so a lookup touches one tenant's slot), 160 random
bits, and a checksum that rejects typos without a Redis read. Only ``sha256(secret)`` is
stored; comparison is constant-time. Unknown, malformed, revoked and expired keys all get
the same UNAUTHENTICATED message.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from router.domain import AgentId, TenantId
from router.errors import PermissionDenied, Unauthenticated

KEY_PREFIX = "omr_"
TENANT_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_KEY_RE = re.compile(r"^omr_([a-z][a-z0-9-]{0,62})_([a-z0-9]{8})_([0-9a-f]{40})([0-9a-f]{8})$")
_UNAUTHENTICATED = "missing, unknown, revoked or expired API key"


class Role(StrEnum):
    """What a key may do; see ``PERMISSIONS``."""

    PLATFORM = "platform"
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    PLANNER = "planner"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's tenant, role, and (for agent keys) bound agent."""

    tenant: TenantId
    role: Role
    key_id: str
    agent_id: AgentId | None = None

    @property
    def actor(self) -> str:
        """The name written in the audit log."""
        return f"tenants/{self.tenant}/apiKeys/{self.key_id}"


_P, _A, _S, _PL, _AD = Role.PLATFORM, Role.AGENT, Role.SUPERVISOR, Role.PLANNER, Role.ADMIN
_READ_FIGURES = frozenset({_P, _S, _PL, _AD})
_AGENT_CALLS = frozenset({_A, _P, _AD})
_SUPERVISE = frozenset({_S, _AD})
_SUPERVISOR_READ = frozenset({_S, _PL, _AD})
_PLAN = frozenset({_PL, _AD})

#: Roles allowed per RPC (service short name / method).
PERMISSIONS: Mapping[str, frozenset[Role]] = {
    "ContactService/SubmitContact": frozenset({_P, _AD}),
    "ContactService/CancelContact": frozenset({_P, _AD}),
    "ContactService/GetContact": frozenset({_P, _S, _AD}),
    "ContactService/WatchContact": frozenset({_P, _S, _AD}),
    "ContactService/GetQueueStats": _READ_FIGURES,
    "ContactService/EstimateWait": _READ_FIGURES,
    "ContactService/WatchQueueFigures": _READ_FIGURES,
    "ContactService/GetCustomer": frozenset({_P, _S, _AD}),
    "ContactService/LookupCustomer": frozenset({_P, _S, _AD}),
    "ContactService/EscalateContact": frozenset({_P, _AD}),
    "ContactService/RequestCallback": frozenset({_P, _AD}),
    "AgentService/SignIn": _AGENT_CALLS,
    "AgentService/SignOut": _AGENT_CALLS | _SUPERVISE,
    "AgentService/SetAgentState": _AGENT_CALLS | _SUPERVISE,
    "AgentService/StreamOffers": _AGENT_CALLS,
    "AgentService/AcceptOffer": _AGENT_CALLS,
    "AgentService/DeclineOffer": _AGENT_CALLS,
    "AgentService/CompleteContact": _AGENT_CALLS,
    "AgentService/Heartbeat": _AGENT_CALLS,
    "SupervisorService/CreateAgent": _SUPERVISE,
    "SupervisorService/GetAgent": _SUPERVISOR_READ | {_P},
    "SupervisorService/ListAgents": _SUPERVISOR_READ,
    "SupervisorService/UpdateAgent": _SUPERVISE,
    "SupervisorService/DeleteAgent": _SUPERVISE,
    "SupervisorService/SetSkill": _SUPERVISE,
    "SupervisorService/RemoveSkill": _SUPERVISE,
    "SupervisorService/CreateRoutingSkill": _SUPERVISE,
    "SupervisorService/ListRoutingSkills": _SUPERVISOR_READ,
    "SupervisorService/DeleteRoutingSkill": _SUPERVISE,
    "SupervisorService/CreateRoutingRule": _SUPERVISE,
    "SupervisorService/GetRoutingRule": _SUPERVISOR_READ,
    "SupervisorService/ListRoutingRules": _SUPERVISOR_READ,
    "SupervisorService/UpdateRoutingRule": _SUPERVISE,
    "SupervisorService/DeleteRoutingRule": _SUPERVISE,
    "SupervisorService/ListAuditEvents": _SUPERVISOR_READ,
    "SupervisorService/GetRoutingExplanation": _SUPERVISOR_READ,
    "SupervisorService/MergeCustomers": _SUPERVISE,
    "AdminService/CreateApiKey": frozenset({_AD}),
    "AdminService/ListApiKeys": frozenset({_AD}),
    "AdminService/RevokeApiKey": frozenset({_AD}),
    "PlanningService/CreatePlan": _PLAN,
    "PlanningService/GetPlan": _PLAN | {_S},
    "PlanningService/ListPlans": _PLAN | {_S},
    "PlanningService/WatchPlan": _PLAN | {_S},
}


def digest(secret: str) -> str:
    """What is stored of a key: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _checksum(body: str) -> str:
    return f"{zlib.crc32(body.encode()) & 0xFFFFFFFF:08x}"


def new_secret(tenant: TenantId, key_id: str) -> str:
    """A fresh key for `tenant` and `key_id`."""
    body = f"{KEY_PREFIX}{tenant}_{key_id}_{secrets.token_hex(20)}"
    return body + _checksum(body)


def new_key_id() -> str:
    """A short random key id (8 of [a-z0-9])."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(8))


def parse_secret(secret: str) -> tuple[TenantId, str] | None:
    """(tenant, key id) of a well-formed key with a valid checksum, else None."""
    match = _KEY_RE.match(secret)
    if match is None:
        return None
    tenant, key_id, _, check = match.groups()
    if not hmac.compare_digest(_checksum(secret[: -len(check)]), check):
        return None
    return TenantId(tenant), key_id


def key_record(
    role: Role, secret: str, agent_id: str, display_name: str, now_s: float
) -> dict[str, Any]:
    """The stored record of a new key (no secret: its digest and a short prefix)."""
    return {
        "role": role.value,
        "digest": digest(secret),
        "agent_id": agent_id,
        "display_name": display_name,
        "create_s": now_s,
        "revoke_s": 0,
        "expire_s": 0,
        "prefix": secret[: secret.rindex("_") + 5],
    }


class KeyLookup(Protocol):
    """Where key records live (``RedisState``)."""

    async def get_api_key(self, tenant: TenantId, key_id: str) -> dict[str, Any] | None: ...


class Authenticator:
    """Turns a presented key into a Principal, with a short cache (revocation applies
    within ``cache_s`` on every replica)."""

    def __init__(self, store: KeyLookup, cache_s: float = 1.0) -> None:
        self._store = store
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def authenticate(self, secret: str | None) -> Principal:
        """The principal of `secret`, or Unauthenticated (one message for every failure)."""
        if not secret:
            raise Unauthenticated(_UNAUTHENTICATED)
        hit = self._cache.get(secret)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self._cache_s:
            principal = hit[1]
        else:
            principal = await self._lookup(secret)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[secret] = (now, principal)
        if principal is None:
            raise Unauthenticated(_UNAUTHENTICATED)
        return principal

    async def _lookup(self, secret: str) -> Principal | None:
        parsed = parse_secret(secret)
        if parsed is None:
            return None
        tenant, key_id = parsed
        record = await self._store.get_api_key(tenant, key_id)
        if record is None or not hmac.compare_digest(record["digest"], digest(secret)):
            return None
        wall = time.time()
        if record.get("revoke_s") or (record.get("expire_s") and record["expire_s"] <= wall):
            return None
        agent = record.get("agent_id") or None
        return Principal(tenant, Role(record["role"]), key_id, AgentId(agent) if agent else None)

    def forget(self) -> None:
        """Drop the cache (after a revocation on this replica)."""
        self._cache.clear()


def check_role(principal: Principal, method: str) -> None:
    """PermissionDenied unless the principal's role may call `method`."""
    allowed = PERMISSIONS.get(method)
    if allowed is None or principal.role not in allowed:
        raise PermissionDenied(f"role {principal.role.value} may not call {method}")


def check_tenant(principal: Principal, tenant: TenantId) -> None:
    """PermissionDenied unless the request's tenant is the key's."""
    if tenant != principal.tenant:
        raise PermissionDenied(f"this API key may not act for tenant {tenant!r}")


def check_agent(principal: Principal, agent_id: AgentId) -> None:
    """PermissionDenied when an agent-bound key acts for another agent."""
    if principal.role is Role.AGENT and principal.agent_id and principal.agent_id != agent_id:
        raise PermissionDenied(f"this API key may only act for agent {principal.agent_id!r}")
