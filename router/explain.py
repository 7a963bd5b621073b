"""Why a contact went to its agent: a structured explanation of one routing decision.

Pure. `explanation` builds a JSON-ready dict from a decision and the floor of the pass
that made it; the live pass stores it with the offer (contact hash field ``why``, written
by the reserve script in the same step as the offer), the supervisor API returns it
(``SupervisorService.GetRoutingExplanation``), the structured log carries it and
``omniroute explain CONTACT_ID`` prints it. Fields:

* ``chosen``: the agent, its weighted score and normalised components;
* ``candidates``: up to `top` eligible agents best first (the chosen one included), each
  scored on the pass's snapshot (slots handed out earlier in the same pass are not
  counted, so an occupancy component may read slightly higher than the decision saw);
* ``runner_up``, ``considered`` (available agents holding the skills), ``eligible``;
* ``steps``: the relaxation steps in force; ``required``: the skills and levels required;
  ``groups``: the agent groups the contact was limited to (absent: any group);
* ``joint``: solved jointly (OR-Tools) with other contacts;
* ``history``: last agent, known agents, repeat reason, affinity hold;
* ``signals``: the queue state seen by steps that trigger on it.
"""

from __future__ import annotations

import heapq
import json
from typing import Any

from router.affinity import Hold
from router.assign import Decision, Floor, top_candidates
from router.domain import AgentId
from router.rules import Rule, groups_of
from router.scoring import Score, eligible, preference, score

#: Candidates kept in an explanation by default.
TOP_CANDIDATES = 10
VERSION = 1


def summary(decision: Decision, *, joint: bool = False, hold: Hold | None = None) -> str:
    """One line saying why this agent, stored as the offer's reason (shown to the agent)."""
    parts = ", ".join(f"{k} {v:.2f}" for k, v in decision.score.components().items())
    runner = ""
    if decision.runner_up:
        runner = f"; runner-up {decision.runner_up[0]} {decision.runner_up[1].total:.3f}"
    step = f"relaxation step {decision.step}" if decision.relaxed else "no relaxation"
    need = ", ".join(f"{s}>={lvl}" for s, lvl in sorted(decision.required.items()))
    groups = groups_of(decision.required)
    if groups is not None:
        need += f"{', ' if need else ''}group in {'|'.join(sorted(groups))}"
    how = "; joint" if joint else ""
    held = f"; held for {hold.kind}" if hold else ""
    bot = "; bot first" if decision.agent.is_bot else ""
    return (
        f"score {decision.score.total:.3f} ({parts}); {decision.eligible} eligible of "
        f"{decision.considered} considered{runner}; {step}; required {need or 'nothing'}"
        f"{how}{held}{bot}"
    )


def _candidate(agent_id: str, s: Score, declined: bool) -> dict[str, Any]:
    return {
        "agent": agent_id,
        "score": round(s.total, 4),
        "components": s.components(),
        "declined": declined,
    }


def _best_scored(
    decision: Decision,
    rule: Rule,
    floor: Floor,
    now: float,
    top: int,
    among: frozenset[AgentId] | None,
) -> list[tuple[AgentId, Score]]:
    """The `top` - 1 best other candidates, each scored with ``router.scoring.score``."""
    contact, required = decision.contact, decision.required
    if decision.agent.is_bot:
        pool = [b for b in floor.bots() if b.free_slots(contact.channel) > 0]
    else:
        pool = floor.open_candidates(required, contact.channel)[1]
    if among is not None:
        pool = [a for a in pool if a.id in among]
    scored = []
    for agent in pool:
        if agent.id == decision.agent.id or not eligible(agent, contact, required):
            continue
        s = score(agent, contact, required, rule.weights, now)
        fresh = agent.id not in contact.declined_by
        scored.append(((fresh, *preference(agent, s)), agent.id, s))
    best = heapq.nlargest(max(0, top - 1), scored, key=lambda e: e[0])
    return [(a, s) for _, a, s in best]


def explanation(
    decision: Decision,
    rule: Rule,
    floor: Floor,
    now: float,
    *,
    joint: bool = False,
    hold: Hold | None = None,
    top: int = TOP_CANDIDATES,
) -> dict[str, Any]:
    """The structured explanation of `decision` (see the module docstring)."""
    contact = decision.contact
    required = decision.required
    candidates: list[dict[str, Any]] = []
    if top > 0:
        among = None if hold is None else frozenset(hold.agents)
        fast = None
        if not decision.agent.is_bot:
            fast = top_candidates(
                floor, contact, required, rule.weights, now, top - 1, among, decision.agent.id
            )
        if fast is not None:
            best = [(a.id, score(a, contact, required, rule.weights, now)) for a in fast]
        else:  # bots, or a NaN somewhere: score every candidate
            best = _best_scored(decision, rule, floor, now, top, among)
        candidates = [_candidate(decision.agent.id, decision.score, False)]
        candidates += [_candidate(a, s, a in contact.declined_by) for a, s in best]
    history: dict[str, str] = {}
    if contact.last_agent_id:
        history["last_agent"] = contact.last_agent_id
    if contact.known_agent_ids:
        history["known_agents"] = ",".join(contact.known_agent_ids)
    if contact.repeat:
        history["repeat"] = contact.repeat
    if hold is not None:
        history["affinity_hold"] = hold.describe(now)
    signals: dict[str, float] = {}
    if contact.signals is not None:
        sig = contact.signals
        for name, value in (
            ("expected_wait_s", sig.expected_wait_s),
            ("service_level", sig.service_level),
            ("eligible_agents", sig.eligible_agents),
        ):
            if value is not None:
                signals[name] = round(float(value), 4)
    groups = groups_of(required)
    extra = {} if groups is None else {"groups": sorted(groups)}
    return {
        **extra,
        "v": VERSION,
        "contact": contact.id,
        "agent": decision.agent.id,
        "t_ms": int(now * 1000),
        "waited_s": round(contact.waited_s(now), 3),
        "chosen": _candidate(decision.agent.id, decision.score, False),
        "candidates": candidates,
        "runner_up": decision.runner_up[0] if decision.runner_up else "",
        "considered": decision.considered,
        "eligible": decision.eligible,
        "steps": rule.steps_in_force(contact.waited_s(now), contact.signals),
        "required": dict(sorted(required.items())),
        "joint": joint,
        "history": history,
        "signals": signals,
        "summary": summary(decision, joint=joint, hold=hold),
    }


def to_json(value: dict[str, Any]) -> str:
    """Compact JSON of an explanation, as stored."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def render(value: dict[str, Any]) -> str:
    """An explanation as text for a person (``omniroute explain``)."""
    lines = [
        f"contact {value['contact']} -> agent {value['agent']}"
        f"{' (joint decision, OR-Tools)' if value.get('joint') else ''}",
        f"waited {value['waited_s']:.1f} s; {value['eligible']} eligible of "
        f"{value['considered']} considered; runner-up {value['runner_up'] or 'none'}",
    ]
    steps = value.get("steps") or []
    lines.append(
        "relaxation: " + (", ".join(f"step {i}" for i in steps) if steps else "none in force")
    )
    required = value.get("required") or {}
    lines.append(
        "required: " + (", ".join(f"{s}>={lvl}" for s, lvl in required.items()) or "nothing")
    )
    if value.get("groups"):
        lines.append("agent groups: " + ", ".join(value["groups"]))
    for name, text in sorted((value.get("history") or {}).items()):
        lines.append(f"history {name}: {text}")
    for name, number in sorted((value.get("signals") or {}).items()):
        lines.append(f"signal {name}: {number}")
    lines.append("candidates (score: proficiency idle occupancy affinity):")
    for c in value.get("candidates") or [value["chosen"]]:
        comps = c["components"]
        mark = "*" if c["agent"] == value["agent"] else " "
        lines.append(
            f" {mark} {c['agent']:<20} {c['score']:7.3f}: {comps['proficiency']:.2f} "
            f"{comps['idle']:.2f} {comps['occupancy']:.2f} {comps['affinity']:.2f}"
            f"{' (declined before)' if c.get('declined') else ''}"
        )
    return "\n".join(lines)
