"""Whole pages: log-in, the floor (with its forms), a contact's routing explanation, and
plain messages. The floor's live parts come from ``render.fragments``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from urllib.parse import urlencode

from queues.records import ContactRecord
from router.domain import AgentState
from router.web.render import CHANNEL_LABEL, STATE_LABEL, duration

FLASH = {
    "skill": "Skill saved: routing uses it from the next decision.",
    "remove": "Skill removed: routing stops using it from the next decision.",
    "state": "Agent state set.",
}


@dataclass(frozen=True, slots=True)
class FormState:
    """What a form showed: the values entered and the problem of each field."""

    values: Mapping[str, str] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)

    def value(self, name: str) -> str:
        """The entered value, escaped for an attribute."""
        return escape(self.values.get(name, ""))

    def error(self, name: str) -> str:
        """The field's problem as HTML next to the field (empty when none)."""
        problem = self.errors.get(name)
        if not problem:
            return ""
        return f'<span class="field-error" data-error-for="{name}">{escape(problem)}</span>'

    def invalid(self, name: str) -> str:
        """Attributes that mark a field in error."""
        return ' aria-invalid="true" class="invalid"' if name in self.errors else ""


def _page(title: str, body: str, body_class: str = "") -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        '<link rel="stylesheet" href="/static/app.css">'
        '<script src="/static/app.js" defer></script></head>'
        f'<body class="{body_class}">{body}</body></html>'
    )


def login_page(error: str = "") -> str:
    """The log-in form: an API key, posted once, never put in a URL."""
    problem = f'<p class="field-error" role="alert">{escape(error)}</p>' if error else ""
    return _page(
        "Omniroute · sign in",
        '<main class="login"><h1>Omniroute <span>supervisor</span></h1>'
        '<form method="post" action="/login" autocomplete="off">'
        '<label for="api_key">API key (role supervisor or admin)</label>'
        '<input id="api_key" name="api_key" type="password" required autofocus>'
        f'{problem}<button type="submit">Sign in</button></form>'
        '<p class="muted">The key is exchanged for a session cookie; it is never kept in '
        "the page or a URL.</p></main>",
        "plain",
    )


def message_page(title: str, text: str) -> str:
    """A plain page with one message and a way back."""
    return _page(
        f"Omniroute · {title}",
        f'<main class="login"><h1>{escape(title)}</h1><p>{escape(text)}</p>'
        '<p><a href="/floor">Back to the floor</a> · <a href="/login">Sign in</a></p></main>',
        "plain",
    )


def _state_options(selected: str) -> str:
    opts = ['<option value="">any state</option>']
    for state in AgentState:
        mark = " selected" if state.value == selected else ""
        opts.append(f'<option value="{state.value}"{mark}>{STATE_LABEL[state]}</option>')
    return "".join(opts)


def _skill_form(form: FormState, token: str, back: str) -> str:
    return (
        '<form method="post" action="/actions/skill" class="action" id="skill-form">'
        "<h3>Skill and proficiency</h3>"
        f'<input type="hidden" name="csrf" value="{token}">'
        f'<input type="hidden" name="back" value="{escape(back)}">'
        '<div class="field"><label for="skill-agent">Agent</label>'
        f'<input id="skill-agent" name="agent" list="agent-ids" value="{form.value("agent")}"'
        f"{form.invalid('agent')}>{form.error('agent')}</div>"
        '<div class="field"><label for="skill-name">Skill</label>'
        f'<input id="skill-name" name="skill" list="skill-names" value="{form.value("skill")}"'
        f"{form.invalid('skill')}>{form.error('skill')}</div>"
        '<div class="field narrow"><label for="skill-level">Proficiency 1–5</label>'
        '<input id="skill-level" name="proficiency" inputmode="numeric" '
        f'value="{form.value("proficiency")}"{form.invalid("proficiency")}>'
        f"{form.error('proficiency')}</div>"
        '<div class="buttons"><button type="submit" name="op" value="set">Set</button>'
        '<button type="submit" name="op" value="remove" class="secondary">Remove</button>'
        f"</div>{form.error('form')}</form>"
    )


def _state_form(form: FormState, token: str, back: str) -> str:
    chosen = form.values.get("state", "away")
    radios = "".join(
        f'<label class="radio"><input type="radio" name="state" value="{s.value}"'
        f"{' checked' if s.value == chosen else ''}> {STATE_LABEL[s]}</label>"
        for s in (AgentState.AVAILABLE, AgentState.AWAY, AgentState.SIGNED_OUT)
    )
    return (
        '<form method="post" action="/actions/state" class="action" id="state-form">'
        "<h3>Force agent state</h3>"
        f'<input type="hidden" name="csrf" value="{token}">'
        f'<input type="hidden" name="back" value="{escape(back)}">'
        '<div class="field"><label for="state-agent">Agent</label>'
        f'<input id="state-agent" name="agent" list="agent-ids" value="{form.value("agent")}"'
        f"{form.invalid('agent')}>{form.error('agent')}</div>"
        f'<div class="field"><span class="label">State</span><div class="radios">{radios}'
        f"</div>{form.error('state')}</div>"
        '<div class="field"><label for="state-reason">Away reason</label>'
        f'<input id="state-reason" name="reason" placeholder="break, lunch, training…" '
        f'value="{form.value("reason")}"{form.invalid("reason")}>{form.error("reason")}</div>'
        f'<div class="buttons"><button type="submit">Apply</button></div>{form.error("form")}'
        "</form>"
    )


def floor_page(
    tenant: str,
    live: Mapping[str, str],
    filters: Mapping[str, str],
    token: str,
    *,
    wallboard: bool = False,
    skill_form: FormState | None = None,
    state_form: FormState | None = None,
    done: str = "",
) -> str:
    """The live floor: header figures, alerts, queues, agents, forms, waiting contacts."""
    back = urlencode({k: v for k, v in filters.items() if v})
    flash = f'<p class="flash" role="status">{escape(FLASH[done])}</p>' if done in FLASH else ""
    wall_link = (
        '<a href="/floor" class="button secondary">Leave wallboard</a>'
        if wallboard
        else '<a href="/floor?wallboard=1" class="button secondary" id="wallboard-link">'
        "Wallboard</a>"
    )
    body = (
        '<header class="top"><div class="brand">Omniroute <span>live floor</span></div>'
        f'<div class="tenant">tenant <b>{escape(tenant)}</b></div>'
        '<div class="conn" id="conn" data-state="connecting">connecting…</div>'
        f'<nav class="nav">{wall_link}<form method="post" action="/logout" class="controls">'
        f'<input type="hidden" name="csrf" value="{token}">'
        '<button type="submit" class="secondary">Sign out</button></form></nav></header>'
        f'<div id="frag-banner">{live.get("banner", "")}</div>'
        f'<section class="cards" id="frag-header">{live.get("header", "")}</section>'
        f"{flash}"
        '<section class="panel"><h2>Queues <span class="muted">issue × channel</span></h2>'
        f'<div id="frag-queues">{live.get("queues", "")}</div></section>'
        '<section class="panel"><div class="panel-head"><h2>Agents</h2>'
        '<form method="get" action="/floor" class="filters controls" id="filters">'
        f'<input name="q" placeholder="name or id" value="{escape(filters.get("q", ""))}" '
        'aria-label="Filter by name">'
        f'<input name="skill" list="skill-names" placeholder="skill" '
        f'value="{escape(filters.get("skill", ""))}" aria-label="Filter by skill">'
        f'<select name="state" aria-label="Filter by state">'
        f"{_state_options(filters.get('state', ''))}</select>"
        '<button type="submit" class="secondary">Filter</button></form></div>'
        f'<div id="frag-agents">{live.get("agents", "")}</div></section>'
        '<section class="panel controls actions">'
        f"{_skill_form(skill_form or FormState(), token, back)}"
        f"{_state_form(state_form or FormState(), token, back)}</section>"
        '<section class="panel waiting"><h2>Waiting contacts <span class="muted">head of '
        f'the queue</span></h2><div id="frag-waiting">{live.get("waiting", "")}</div></section>'
        f'<div id="frag-lists">{live.get("lists", "")}</div>'
    )
    classes = "floor wallboard" if wallboard else "floor"
    return _page(f"Omniroute · {tenant} · live floor", body, classes)


def contact_page(record: ContactRecord, now_ms: int, required: str) -> str:
    """A contact with its routing explanation, if a decision was ever made for it."""
    c = record.contact
    waited = duration((now_ms - c.arrived_at * 1000) / 1000)
    if record.reason:
        why = f'<p class="explanation" id="explanation">{escape(record.reason)}</p>'
    else:
        why = (
            '<p class="explanation none" id="explanation">No routing decision yet: the '
            f"contact waits for an eligible agent. It requires {escape(required)} now.</p>"
        )
    rows = [
        ("Status", record.status.value),
        ("Issue", c.issue),
        ("Channel", CHANNEL_LABEL[c.channel]),
        ("Priority", str(c.priority)),
        ("Language", c.language or "—"),
        ("Customer", c.customer_id or "—"),
        ("Since arrival", waited),
        ("Agent", record.agent_id or "—"),
        ("Offer token", str(record.token)),
        ("Declined or missed by", ", ".join(c.declined_by) or "—"),
    ]
    table = "".join(f"<tr><th>{k}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return _page(
        f"Omniroute · contact {c.id}",
        '<header class="top"><div class="brand">Omniroute <span>contact</span></div>'
        '<nav class="nav"><a href="/floor" class="button secondary">Back to the floor</a>'
        "</nav></header>"
        f'<section class="panel"><h2>Contact {escape(c.id)}</h2>'
        f'<table class="kv">{table}</table><h3>Routing explanation</h3>{why}</section>',
        "floor",
    )
