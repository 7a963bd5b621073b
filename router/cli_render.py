"""Rich tables of API messages, for the supervisor commands and the demo.

Pure functions from protobuf messages to ``rich`` renderables; printing is the caller's.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from rich.table import Table

from router.admin_specs import channel_label
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import resources_pb2 as pb


def short(name: str) -> str:
    """The last segment of a resource name: ``tenants/t/agents/ana`` -> ``ana``."""
    return name.rsplit("/", 1)[-1]


def enum_label(enum: object, value: int, prefix: str) -> str:
    """``AGENT_STATE_AVAILABLE`` -> ``available``."""
    name: str = enum.Name(value)  # type: ignore[attr-defined]
    return name.removeprefix(prefix).lower()


def seconds_text(d: Duration) -> str:
    """A duration as ``12.3s``, ``4m05s`` or ``2h10m``."""
    s = d.seconds + d.nanos / 1e9
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def time_text(ts: Timestamp) -> str:
    """A timestamp as ISO-8601 UTC to the second, or ``-`` when unset."""
    if not ts.seconds and not ts.nanos:
        return "-"
    return ts.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")


def skills_text(skills: Iterable[pb.Skill]) -> str:
    """``billing=4 lang.en=5``."""
    return " ".join(f"{s.skill}={s.proficiency}" for s in skills) or "-"


def capacity_text(agent: pb.Agent) -> str:
    """``voice 0/1 chat 2/3``: load over capacity per channel."""
    load = {entry.channel: entry.contacts for entry in agent.load}
    return (
        " ".join(
            f"{channel_label(c.channel)} {load.get(c.channel, 0)}/{c.max_contacts}"
            for c in agent.capacities
        )
        or "-"
    )


def state_text(agent: pb.Agent) -> str:
    """``available``, or ``away (lunch)``."""
    state = enum_label(pb.AgentState, agent.state, "AGENT_STATE_")
    return f"{state} ({agent.away_reason})" if agent.away_reason else state


def agents_table(agents: Iterable[pb.Agent], title: str = "Agents") -> Table:
    """One row per agent: id, name, kind, state, skills, load/capacity."""
    table = Table(title=title, title_justify="left")
    for column in ("agent", "name", "kind", "state", "skills", "load/capacity", "missed"):
        table.add_column(column)
    for a in agents:
        table.add_row(
            short(a.name),
            a.display_name,
            enum_label(pb.AgentKind, a.kind, "AGENT_KIND_"),
            state_text(a),
            skills_text(a.skills),
            capacity_text(a),
            str(a.missed_offers),
        )
    return table


def agent_table(a: pb.Agent) -> Table:
    """One agent, field by field."""
    table = Table(title=f"Agent {short(a.name)}", title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("name", a.name)
    table.add_row("display name", a.display_name or "-")
    table.add_row("kind", enum_label(pb.AgentKind, a.kind, "AGENT_KIND_"))
    table.add_row("state", state_text(a))
    table.add_row("since", time_text(a.state_time))
    table.add_row("idle since", time_text(a.idle_since))
    table.add_row("skills", skills_text(a.skills))
    table.add_row("groups", ", ".join(a.groups) or "-")
    table.add_row("load/capacity", capacity_text(a))
    table.add_row("missed offers", str(a.missed_offers))
    table.add_row("etag", a.etag)
    return table


def requirements_text(reqs: Iterable[pb.SkillRequirement]) -> str:
    """``billing>=3 lang.en>=1``."""
    return " ".join(f"{r.skill}>={r.min_proficiency}" for r in reqs) or "-"


def step_text(s: pb.RelaxationStep) -> str:
    """``after 30.0s: billing>=2 +group overflow (while expected wait >= 2m)``."""
    parts = [requirements_text(s.skills)] if s.skills else []
    parts += [f"+group {g}" for g in s.add_agent_groups]
    conditions = []
    if s.HasField("expected_wait_over"):
        conditions.append(f"expected wait >= {seconds_text(s.expected_wait_over)}")
    if s.HasField("service_level_below"):
        conditions.append(f"service level < {s.service_level_below:.0%}")
    if s.HasField("eligible_agents_at_most"):
        conditions.append(f"eligible agents <= {s.eligible_agents_at_most}")
    when = f" (while {', '.join(conditions)})" if conditions else ""
    return f"after {seconds_text(s.after)}: {' '.join(parts)}{when}"


def steps_text(rule: pb.RoutingRule) -> str:
    """``after 30.0s: billing>=2; after 1m30s: billing>=1``."""
    return "; ".join(step_text(s) for s in rule.relaxation_steps) or "-"


def targets_text(rule: pb.RoutingRule) -> str:
    """``voice 20.0s chat 1m00s`` (channels not listed use defaults)."""
    return (
        " ".join(
            f"{channel_label(t.channel)} {seconds_text(t.answer_target)}"
            for t in rule.answer_targets
        )
        or "defaults"
    )


def skills_table(skills: Iterable[pb.RoutingSkill], title: str = "Skills") -> Table:
    """One row per skill of the catalogue."""
    table = Table(title=title, title_justify="left")
    for column in ("skill", "declared", "agents", "rules", "description"):
        table.add_column(column)
    for s in skills:
        table.add_row(
            short(s.name),
            "yes" if s.declared else "-",
            str(s.agent_count),
            str(s.rule_count),
            s.description or "-",
        )
    return table


def rules_table(rules: Iterable[pb.RoutingRule]) -> Table:
    """One row per rule."""
    table = Table(title="Routing rules", title_justify="left")
    for column in ("issue", "requires", "relaxation", "SL", "targets", "language"):
        table.add_column(column)
    for r in rules:
        table.add_row(
            short(r.name),
            requirements_text(r.required_skills),
            steps_text(r),
            f"{r.service_level:.0%}",
            targets_text(r),
            "required" if r.require_language else "-",
        )
    return table


def rule_table(r: pb.RoutingRule) -> Table:
    """One rule, field by field."""
    table = Table(title=f"Rule {short(r.name)}", title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    w = r.weights
    table.add_row("name", r.name)
    table.add_row("description", r.description or "-")
    table.add_row("requires", requirements_text(r.required_skills))
    table.add_row("agent groups", ", ".join(r.agent_groups) or "any")
    table.add_row("relaxation", steps_text(r))
    table.add_row("service level", f"{r.service_level:.0%}")
    table.add_row("answer targets", targets_text(r))
    table.add_row(
        "weights",
        f"proficiency {w.proficiency:g}, idle {w.idle:g}, occupancy {w.occupancy:g}, "
        f"affinity {w.affinity:g}, idle horizon {seconds_text(w.idle_horizon)}",
    )
    table.add_row("language", "required" if r.require_language else "not required")
    table.add_row("bot first", "yes: a bot, then people" if r.bot_first else "no")
    return table


def queue_table(stats: contact_pb.QueueStats) -> Table:
    """The single queue's views by issue and channel, with the floor's totals."""
    table = Table(
        title=(
            f"Queue: {stats.waiting} waiting, {stats.agents_available} agents available, "
            f"{stats.agents_signed_in} signed in ({time_text(stats.read_time)} UTC)"
        ),
        title_justify="left",
    )
    for column in ("issue", "channel", "waiting", "oldest", "answered", "in target"):
        table.add_column(column, justify="left" if column in ("issue", "channel") else "right")
    for column in ("abandoned", "SL", "exp. wait", "AHT", "eligible"):
        table.add_column(column, justify="right")
    for v in stats.views:
        table.add_row(
            v.issue,
            channel_label(v.channel),
            str(v.waiting),
            seconds_text(v.oldest_wait),
            str(v.answered),
            str(v.answered_in_target),
            str(v.abandoned),
            f"{v.service_level:.0%}",
            seconds_text(v.expected_wait) if v.HasField("expected_wait") else "-",
            seconds_text(v.average_handle_time) if v.HasField("average_handle_time") else "-",
            str(v.eligible_agents),
        )
    return table


def audit_table(events: Iterable[pb.AuditEvent]) -> Table:
    """The audit log, newest first."""
    table = Table(title="Audit log (newest first)", title_justify="left")
    for column in ("time (UTC)", "actor", "action", "target"):
        table.add_column(column)
    for e in events:
        table.add_row(time_text(e.time), short(e.actor), e.action, e.target)
    return table


def keys_table(keys: Iterable[pb.ApiKey]) -> Table:
    """API keys without secrets."""
    table = Table(title="API keys", title_justify="left")
    for column in ("key id", "role", "agent", "name", "prefix", "created (UTC)", "revoked"):
        table.add_column(column)
    for k in keys:
        table.add_row(
            short(k.name),
            enum_label(pb.Role, k.role, "ROLE_"),
            k.agent_id or "-",
            k.display_name or "-",
            k.prefix,
            time_text(k.create_time),
            time_text(k.revoke_time),
        )
    return table
