"""The Redis key scheme: every key Omniroute uses is built here, nowhere else.

``{t}`` is the tenant id as a Redis Cluster hash tag, so all of one tenant's keys live in
one slot and every script touches one slot only. Keys outside a tenant are few and small.

| key                             | type   | holds                                             |
|---------------------------------|--------|---------------------------------------------------|
| ``omr:{t}:agent:{a}``           | hash   | skills, capacity (JSON), state, away_reason,      |
|                                 |        | idle_since_ms, state_ms, ver, missed, seen_ms     |
| ``omr:{t}:agent:{a}:load``      | hash   | channel -> contacts offered or held               |
| ``omr:{t}:agent:{a}:contacts``  | hash   | contact id -> offer token, offered or held        |
| ``omr:{t}:agents``              | set    | every agent id of the tenant                      |
| ``omr:{t}:available``           | set    | agents whose state is available                   |
| ``omr:{t}:presence``            | zset   | signed-in agents, score = last heartbeat ms       |
| ``omr:{t}:contact:{c}``         | hash   | channel, issue, priority, customer, arrived_ms,   |
|                                 |        | qscore, status, agent, token, outcome, ...;       |
|                                 |        | tp: W3C traceparent of its submit (tracing on);   |
|                                 |        | bot (for a bot first), esc_* (escalated by a bot),|
|                                 |        | cb* (callback), since_ms (wait restarted), csat   |
| ``omr:{t}:queue``               | zset   | waiting contacts, score = queue order             |
| ``omr:{t}:callbacks``           | zset   | callbacks waiting for their time, score = due ms  |
| ``omr:{t}:offers``              | zset   | offered contacts, score = deadline ms             |
| ``omr:{t}:view:{issue}:{ch}``   | zset   | waiting contacts of one issue and channel,        |
|                                 |        | score = arrival ms (counts, oldest wait)          |
| ``omr:{t}:views``               | set    | ``issue:channel`` pairs seen                      |
| ``omr:{t}:stats:{yyyymmdd}``    | hash   | ``issue:channel:counter`` -> today's counters     |
| ``omr:{t}:rule:{issue}``        | string | routing rule JSON                                 |
| ``omr:{t}:rules``               | set    | issues that have a rule                           |
| ``omr:{t}:skills``              | hash   | declared skill -> JSON {description, created_ms}  |
| ``omr:{t}:skill_agents``        | hash   | skill -> agents holding it (write_agent.lua)      |
| ``omr:{t}:skill_rules``         | hash   | skill -> rules naming it (write_rule.lua)         |
| ``omr:{t}:skill_counts``        | string | "1" once index_skills.lua counted the tenant      |
| ``omr:{t}:customer:{cu}``       | hash   | identities JSON, created_ms                       |
| ``omr:{t}:customer:{cu}:history``| list  | history entries JSON, newest first, bounded       |
| ``omr:{t}:identity:{kind}:{v}`` | string | customer id the identity resolves to              |
| ``omr:{t}:idem:{method}:{key}`` | string | idempotency record: payload digest, contact id    |
| ``omr:{t}:audit``               | stream | actor, action, target, before, after; capped      |
| ``omr:{t}:apikeys``             | hash   | key id -> API key record JSON (digest, no secret) |
| ``omr:{t}:ratelimit``           | string | the tenant's rate limit JSON (rate_per_s, burst,  |
|                                 |        | max_wait_s); none: the replicas' default          |
| ``omr:{t}:epoch``               | hash   | boot (run id of the Redis process last seen),     |
|                                 |        | floor (offer tokens exceed it), until (routing    |
|                                 |        | paused until, ms), restarts (reconciliations)     |
| ``omr:{t}:events``              | pubsub | small "changed" notices for every replica         |
| ``omr:{t}:web:sl``              | hash   | minute -> today's answered,in_target,abandoned    |
|                                 |        | (the web view's 30-minute service level)          |
| ``omr:web:secret``              | string | key that signs web view session cookies           |
| ``omr:tenants``                 | set    | tenants with state (the sweepers walk it)         |
| ``omr:metrics:leader``          | string | replica id exporting the shared gauges (lease)    |

Scripts get every key they touch through ``KEYS``, built by the functions below; values
and the events channel name come through ``ARGV``.
"""

from __future__ import annotations

from router.domain import AgentId, Channel, ContactId, CustomerId, TenantId

PREFIX = "omr"
TENANTS = f"{PREFIX}:tenants"


def _t(tenant: TenantId) -> str:
    return f"{PREFIX}:{{{tenant}}}"


def epoch(tenant: TenantId) -> str:
    """Hash: the Redis process last seen holding the tenant, the offer-token floor and the
    end of a reconciliation pause (``check_epoch.lua``)."""
    return f"{_t(tenant)}:epoch"


def agent(tenant: TenantId, agent_id: AgentId) -> str:
    """Hash: the agent's profile and state."""
    return f"{_t(tenant)}:agent:{agent_id}"


def agent_load(tenant: TenantId, agent_id: AgentId) -> str:
    """Hash: contacts in hand per channel."""
    return f"{agent(tenant, agent_id)}:load"


def agent_contacts(tenant: TenantId, agent_id: AgentId) -> str:
    """Hash: contact id -> offer token, for every contact offered to or held by the agent."""
    return f"{agent(tenant, agent_id)}:contacts"


def agents(tenant: TenantId) -> str:
    """Set: every agent id of the tenant."""
    return f"{_t(tenant)}:agents"


def available(tenant: TenantId) -> str:
    """Set: agents whose state is available."""
    return f"{_t(tenant)}:available"


def presence(tenant: TenantId) -> str:
    """Sorted set: signed-in agents by last heartbeat (ms)."""
    return f"{_t(tenant)}:presence"


def contact(tenant: TenantId, contact_id: ContactId) -> str:
    """Hash: one contact."""
    return f"{_t(tenant)}:contact:{contact_id}"


def queue(tenant: TenantId) -> str:
    """Sorted set: the tenant's single queue, lowest score served first."""
    return f"{_t(tenant)}:queue"


def callbacks(tenant: TenantId) -> str:
    """Sorted set: contacts out of the queue until the callback time they chose (ms)."""
    return f"{_t(tenant)}:callbacks"


def offers(tenant: TenantId) -> str:
    """Sorted set: offered contacts by deadline (ms, Redis clock)."""
    return f"{_t(tenant)}:offers"


def view(tenant: TenantId, issue: str, channel: Channel) -> str:
    """Sorted set: waiting contacts of one issue and channel, by arrival (ms)."""
    return f"{_t(tenant)}:view:{issue}:{channel.value}"


def views(tenant: TenantId) -> str:
    """Set: ``issue:channel`` pairs seen."""
    return f"{_t(tenant)}:views"


def stats(tenant: TenantId, day: str) -> str:
    """Hash: counters of one UTC day (``yyyymmdd``), fields ``issue:channel:counter``."""
    return f"{_t(tenant)}:stats:{day}"


def rule(tenant: TenantId, issue: str) -> str:
    """String: one routing rule as JSON."""
    return f"{_t(tenant)}:rule:{issue}"


def rules(tenant: TenantId) -> str:
    """Set: issues that have a rule."""
    return f"{_t(tenant)}:rules"


def skills(tenant: TenantId) -> str:
    """Hash: the declared skills of the catalogue, skill -> JSON (description, created)."""
    return f"{_t(tenant)}:skills"


def skill_agents(tenant: TenantId) -> str:
    """Hash: skill -> how many agents hold it (kept by ``write_agent.lua``)."""
    return f"{_t(tenant)}:skill_agents"


def skill_rules(tenant: TenantId) -> str:
    """Hash: skill -> how many routing rules name it (kept by ``write_rule.lua``)."""
    return f"{_t(tenant)}:skill_rules"


def skill_counts(tenant: TenantId) -> str:
    """String: set once ``index_skills.lua`` counted the tenant's skills afresh."""
    return f"{_t(tenant)}:skill_counts"


def customer(tenant: TenantId, customer_id: CustomerId) -> str:
    """Hash: one customer."""
    return f"{_t(tenant)}:customer:{customer_id}"


def history(tenant: TenantId, customer_id: CustomerId) -> str:
    """List: the customer's history, newest first."""
    return f"{customer(tenant, customer_id)}:history"


def identity(tenant: TenantId, kind: str, value: str) -> str:
    """String: the customer id an identity resolves to."""
    return f"{_t(tenant)}:identity:{kind}:{value}"


def idempotency(tenant: TenantId, method: str, key: str) -> str:
    """String: the first answer to a request with this idempotency key."""
    return f"{_t(tenant)}:idem:{method}:{key}"


def audit(tenant: TenantId) -> str:
    """Stream: the tenant's audit log."""
    return f"{_t(tenant)}:audit"


def api_keys(tenant: TenantId) -> str:
    """Hash: the tenant's API key records (never the secret)."""
    return f"{_t(tenant)}:apikeys"


def rate_limit(tenant: TenantId) -> str:
    """String: the tenant's rate limit per replica, JSON (operator-set; none: default)."""
    return f"{_t(tenant)}:ratelimit"


def events(tenant: TenantId) -> str:
    """Pub/sub channel: "something changed" notices for every replica."""
    return f"{_t(tenant)}:events"


EVENTS_PATTERN = f"{PREFIX}:{{*}}:events"
WEB_SECRET = f"{PREFIX}:web:secret"
#: Lease of the one replica that exports gauges read from shared state (SET NX PX).
METRICS_LEADER = f"{PREFIX}:metrics:leader"


def web_service_level(tenant: TenantId) -> str:
    """Hash: per minute (epoch minute), today's cumulative service-level counters."""
    return f"{_t(tenant)}:web:sl"


def tenant_of_channel(channel: str) -> TenantId:
    """The tenant of an events channel name (inverse of :func:`events`)."""
    start = channel.index("{") + 1
    return TenantId(channel[start : channel.index("}", start)])
