"""HTML fragments of the live floor, rendered once per snapshot and shared by every page
of the tenant. Every value goes through ``escape``; styling is by class only (the content
security policy allows no inline style or script).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

from router.domain import Agent, AgentState, Channel
from router.web.snapshot import QueueRow, Snapshot, service_level

CHANNEL_LABEL: Mapping[Channel, str] = {
    Channel.VOICE: "Voice",
    Channel.CHAT: "Chat",
    Channel.SMS: "SMS",
    Channel.EMAIL: "E-mail",
    Channel.WHATSAPP: "WhatsApp",
    Channel.SOCIAL: "Social",
}
STATE_LABEL: Mapping[AgentState, str] = {
    AgentState.AVAILABLE: "Available",
    AgentState.AWAY: "Away",
    AgentState.SIGNED_OUT: "Signed out",
}
_STATE_ORDER = {AgentState.AVAILABLE: 0, AgentState.AWAY: 1, AgentState.SIGNED_OUT: 2}
ALERT_TEXT = {
    "wait": "longest wait over target",
    "sl": "service level below target",
    "no_agent": "contacts waiting, no eligible agent signed in",
}


def duration(seconds: float | None) -> str:
    """A wait as a person reads it: ``45 s``, ``3 m 05 s``, ``2 h 10 m``; ``—`` if unknown."""
    if seconds is None:
        return "—"
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} m {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} m"


def percent(value: float | None) -> str:
    """``87 %``, or ``—`` when there is nothing to measure."""
    return "—" if value is None else f"{value * 100:.0f} %"


def _tick(since_ms: int | None, now_ms: int) -> str:
    if since_ms is None:
        return '<span class="num">—</span>'
    text = duration((now_ms - since_ms) / 1000)
    return f'<span class="num tick" data-since="{since_ms}">{text}</span>'


def _sl_class(value: float | None, target: float) -> str:
    if value is None:
        return "sl-none"
    if value >= target:
        return "sl-ok"
    return "sl-warn" if value >= target - 0.1 else "sl-bad"


def _card(label: str, value: str, sub: str = "", cls: str = "") -> str:
    sub_html = f'<div class="card-sub">{sub}</div>' if sub else ""
    return (
        f'<div class="card {cls}"><div class="card-label">{escape(label)}</div>'
        f'<div class="card-value">{value}</div>{sub_html}</div>'
    )


def header(snap: Snapshot) -> str:
    """The header figures: waiting, longest wait, service level, agents, occupancy."""
    per_channel = " · ".join(
        f"{CHANNEL_LABEL[ch]} <b>{n}</b>"
        for ch, n in sorted(snap.waiting_by_channel.items(), key=lambda kv: kv[0].value)
        if n
    )
    sl_today = service_level(snap.today)
    sl_window = service_level(snap.window.totals)
    window = f"last {min(30, snap.window.minutes) or 1} min"
    target = f"target {percent(snap.sl_target)}"
    occupancy = snap.occupancy
    agents = (
        f'<span class="st st-available">{snap.agents_in(AgentState.AVAILABLE)} available</span>'
        f'<span class="st st-busy">{snap.agents_busy} on contacts</span>'
        f'<span class="st st-away">{snap.agents_in(AgentState.AWAY)} away</span>'
        f'<span class="st st-signed_out">{snap.agents_in(AgentState.SIGNED_OUT)} out</span>'
    )
    return "".join(
        [
            _card(
                "Waiting now",
                f'<span class="num" id="fig-waiting">{snap.waiting_total}</span>',
                per_channel or "no contact waiting",
            ),
            _card("Longest wait", _tick(snap.oldest_ms, snap.now_ms), "oldest contact"),
            _card(
                "Service level today",
                f'<span class="num">{percent(sl_today)}</span>',
                target,
                _sl_class(sl_today, snap.sl_target),
            ),
            _card(
                "Service level",
                f'<span class="num">{percent(sl_window)}</span>',
                f"{window} · {target}",
                _sl_class(sl_window, snap.sl_target),
            ),
            _card("Agents", f'<span class="num">{len(snap.agents)}</span>', agents),
            _card("Occupancy", f'<span class="num">{percent(occupancy)}</span>', "signed in"),
            _card(
                "Abandoned today",
                f'<span class="num">{snap.today.abandoned}</span>',
                f"{snap.today.answered} answered",
            ),
        ]
    )


def banner(snap: Snapshot) -> str:
    """One line per queue that breaches a threshold; empty when all is well."""
    lines = []
    for row in snap.queues:
        alerts = row.alerts(snap.now_ms)
        if alerts:
            what = "; ".join(ALERT_TEXT[a] for a in alerts)
            lines.append(
                f"<li><b>{escape(row.issue)} · {CHANNEL_LABEL[row.channel]}</b>: {what}</li>"
            )
    if not lines:
        return ""
    return f'<div class="banner" role="alert"><ul>{"".join(lines)}</ul></div>'


def _queue_row(row: QueueRow, now_ms: int) -> str:
    alerts = row.alerts(now_ms)
    sl = row.service_level
    classes = " ".join(["q", *(f"alert-{a}" for a in alerts)])
    eligible = f'<span class="num">{row.eligible_available}</span>'
    if row.eligible_signed_in != row.eligible_available:
        eligible += f' <span class="muted">of {row.eligible_signed_in} signed in</span>'
    return (
        f'<tr class="{classes}" data-issue="{escape(row.issue)}" data-channel="{row.channel}">'
        f"<td>{escape(row.issue)}</td><td>{CHANNEL_LABEL[row.channel]}</td>"
        f'<td class="r"><span class="num">{row.waiting}</span></td>'
        f'<td class="r {"hot" if "wait" in alerts else ""}">{_tick(row.oldest_ms, now_ms)}'
        f' <span class="muted">/ {duration(row.answer_target_s)}</span></td>'
        f'<td class="r"><span class="pill {_sl_class(sl, row.sl_target)}">{percent(sl)}</span>'
        f' <span class="muted">/ {percent(row.sl_target)}</span></td>'
        f'<td class="r">{duration(row.expected_wait_s)}</td>'
        f'<td class="r">{eligible}</td>'
        f"<td>{escape(row.step_text) or '<span class=muted>none</span>'}</td></tr>"
    )


def queues(snap: Snapshot) -> str:
    """The queue table: one row per issue × channel seen today or waiting now."""
    if not snap.queues:
        return '<p class="empty">No contact today yet.</p>'
    rows = "".join(
        _queue_row(r, snap.now_ms)
        for r in sorted(snap.queues, key=lambda r: (-r.waiting, r.issue, r.channel.value))
    )
    return (
        '<table class="grid"><thead><tr><th>Issue</th><th>Channel</th>'
        '<th class="r">Waiting</th><th class="r">Longest wait / target</th>'
        '<th class="r">Service level / target</th><th class="r">Expected wait</th>'
        '<th class="r">Eligible available</th><th>Relaxation in force</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _load(agent: Agent) -> str:
    parts = []
    for ch in sorted(agent.capacity, key=lambda c: list(Channel).index(c)):
        cap = agent.capacity[ch]
        if not cap:
            continue
        used = agent.load.get(ch, 0)
        full = " full" if used >= cap else (" used" if used else "")
        parts.append(f'<span class="slot{full}">{CHANNEL_LABEL[ch]} {used}/{cap}</span>')
    return "".join(parts)


def _skills(agent: Agent) -> str:
    return "".join(
        f'<span class="skill lvl{lvl}" data-skill="{escape(s)}">{escape(s)}<b>{lvl}</b></span>'
        for s, lvl in sorted(agent.skills.items())
    )


def _agent_row(agent: Agent, contacts: Iterable[str], now_ms: int) -> str:
    state = agent.state.value
    busy = " busy" if agent.load and agent.state is not AgentState.SIGNED_OUT else ""
    links = "".join(
        f'<a class="contact" href="/contacts/{escape(c)}">{escape(c[:6])}</a>' for c in contacts
    )
    since = int(agent.state_since * 1000) if agent.state_since else None
    name = escape(agent.display_name or agent.id)
    search = escape(f"{agent.id} {agent.display_name}".lower())
    skills = escape(" ".join(agent.skills))
    return (
        f'<tr class="agent st-{state}{busy}" data-agent="{escape(agent.id)}" '
        f'data-state="{state}" data-name="{search}" data-skills=" {skills} ">'
        f'<td><div class="who">{name}</div><div class="muted">{escape(agent.id)}</div></td>'
        f'<td><span class="badge st-{state}{busy}">{STATE_LABEL[agent.state]}</span> '
        f"{_tick(since, now_ms)}</td>"
        f"<td>{escape(agent.away_reason) if agent.state is AgentState.AWAY else ''}</td>"
        f"<td>{_load(agent)}{links}</td><td>{_skills(agent)}</td></tr>"
    )


def agents(snap: Snapshot) -> str:
    """The agent grid (filtered in the browser by skill, state and name)."""
    if not snap.agents:
        return '<p class="empty">No agent yet.</p>'
    ordered = sorted(
        snap.agents, key=lambda a: (_STATE_ORDER[a.state], (a.display_name or a.id).lower())
    )
    rows = "".join(_agent_row(a, snap.contacts_in_hand.get(a.id, ()), snap.now_ms) for a in ordered)
    return (
        '<table class="grid agents"><thead><tr><th>Agent</th><th>State</th>'
        "<th>Away reason</th><th>In hand / capacity</th><th>Skills (proficiency)</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def waiting(snap: Snapshot) -> str:
    """The head of the queue, each contact linking to its routing explanation."""
    if not snap.waiting:
        return '<p class="empty">Nobody waiting.</p>'
    rows = []
    for rec in snap.waiting:
        c = rec.contact
        why = "explanation" if rec.reason else "details"
        rows.append(
            f'<tr data-contact="{escape(c.id)}"><td><a href="/contacts/{escape(c.id)}">'
            f"{escape(c.id)}</a></td><td>{escape(c.issue)}</td>"
            f"<td>{CHANNEL_LABEL[c.channel]}</td><td class=r>{c.priority}</td>"
            f'<td class="r">{_tick(int(c.arrived_at * 1000), snap.now_ms)}</td>'
            f"<td>{len(c.declined_by) or ''}</td>"
            f'<td><a href="/contacts/{escape(c.id)}">{why}</a></td></tr>'
        )
    more = snap.waiting_total - len(snap.waiting)
    tail = f'<p class="muted">and {more} more</p>' if more > 0 else ""
    return (
        '<table class="grid"><thead><tr><th>Contact</th><th>Issue</th><th>Channel</th>'
        '<th class="r">Priority</th><th class="r">Waiting</th><th>Declined</th><th></th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>{tail}"
    )


def lists(snap: Snapshot) -> str:
    """Datalists that help fill the forms: agent ids and known skills."""
    agent_opts = "".join(
        f'<option value="{escape(a.id)}">{escape(a.display_name)}</option>' for a in snap.agents
    )
    skill_opts = "".join(f'<option value="{escape(s)}"></option>' for s in snap.skills)
    return (
        f'<datalist id="agent-ids">{agent_opts}</datalist>'
        f'<datalist id="skill-names">{skill_opts}</datalist>'
    )


def fragments(snap: Snapshot) -> dict[str, str]:
    """Every live part of the page, by the id suffix of the element it fills."""
    return {
        "header": header(snap),
        "banner": banner(snap),
        "queues": queues(snap),
        "agents": agents(snap),
        "waiting": waiting(snap),
        "lists": lists(snap),
    }
