"""Replay a contact log: its real arrivals against its real on-duty agents.

Each logged contact arrives when it arrived. What it *would* do is taken from the log where
the log knows it, and modelled where it does not:

* handle time: the logged one if the contact was served; else a draw from the issue's
  logged handle times (empirical);
* patience: the logged wait if the contact abandoned (that is its patience); if it was
  served, its patience exceeded its wait by an unknown amount: wait + an exponential draw
  with the issue's abandonment rate (MLE from the log, Brown et al. 2005; memoryless, so the
  remaining patience of a served caller is again exponential).

Agents are those the log shows serving, with a skill for every issue they served (level by
their share, from ``simulations.profile``), on duty in the spans the log shows them working.
Phantom contacts (vanished without cause) are left out. Then the routing is Omniroute's, not
the bank's: the comparison shows how far simulated and logged figures agree, and why not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from rich.table import Table

from router.domain import AgentId, Channel, CustomerId
from router.errors import NotFound
from router.rules import Rule, RuleBook
from simulations.history import LoggedContact, default_bank_log, derive_profile, read_log
from simulations.models import Empirical
from simulations.plan import AgentSpec, History, Plan, ReplayContact
from simulations.results import Replications
from simulations.scenario import Scenario

#: The bank's service-level target for calls (seconds), the voice default of the core.
BANK_TARGET_S = 20.0
_DAY_S = 86_400.0


def issue_name(raw: str) -> str:
    """The log's issue code as a core name (lower case: ``PS`` -> ``ps``)."""
    return raw.strip().lower()


def replay_plan(
    contacts: Sequence[LoggedContact],
    name: str = "replay",
    interval_s: float = 3600.0,
    wrap_up_s: float = 0.0,
) -> Plan:
    """A plan replaying `contacts` (see the module docstring for what is modelled);
    `wrap_up_s` of after-contact work is added to every handle time (a log of talk times
    does not show it, but the agent is not free during it)."""
    kept = sorted((c for c in contacts if c.outcome != "phantom"), key=lambda c: c.arrived_at)
    if not kept:
        raise NotFound("the log holds no served or abandoned contact")
    profile = derive_profile(kept)
    origin = math.floor(kept[0].arrived_at / _DAY_S) * _DAY_S
    replay = []
    for c in kept:
        served = c.outcome == "served" and c.handle_s is not None
        fit = profile.patience.get(c.issue)
        rate = fit.rate_per_s if fit is not None else 0.0
        replay.append(
            ReplayContact(
                arrived_at=c.arrived_at - origin,
                issue=issue_name(c.issue),
                channel=Channel(c.channel),
                priority=c.priority,
                customer_id=CustomerId(c.customer_id) if c.customer_id else None,
                handle_s=max(c.handle_s or 0.0, 0.0) + wrap_up_s if served else None,
                patience_s=c.wait_s if c.outcome == "abandoned" or rate > 0 else math.inf,
                extra_patience_rate=rate if c.outcome != "abandoned" else 0.0,
            )
        )
    agents = tuple(
        AgentSpec(
            id=AgentId(agent),
            group="agents",
            skills=MappingProxyType({issue_name(i): lv for i, lv in levels.items()}),
            capacity=MappingProxyType({Channel.VOICE: 1}),
            on_duty=tuple((a - origin, b - origin) for a, b in profile.on_duty.get(agent, ())),
        )
        for agent, levels in sorted(profile.proficiency.items())
    )
    issues = sorted({r.issue for r in replay})
    rules = RuleBook(
        Rule(
            issue=i,
            skills=MappingProxyType({i: 1}),
            answer_target_s=MappingProxyType({Channel.VOICE: BANK_TARGET_S}),
        )
        for i in issues
    )
    horizon = max(r.arrived_at for r in replay) + 1.0
    issue_handle = {
        issue_name(i): Empirical(tuple(s + wrap_up_s for s in fit.samples_s))
        for i, fit in profile.handle.items()
        if fit.samples_s
    }
    return Plan(
        agents=agents,
        rules=rules,
        horizon_s=horizon,
        interval_s=interval_s,
        replay=tuple(replay),
        history=History.SHARED,
        name=name,
        issue_handle=issue_handle,
    )


def bank_scenario(
    path: Path | None = None, replications: int = 3, seed: int = 1, wrap_up_s: float = 0.0
) -> Scenario:
    """The 15-day bank log as a scenario (NotFound naming the path when it is absent)."""
    log_path = path or default_bank_log()
    if log_path is None or not log_path.is_file():
        where = log_path or "../shared/data/anonymous_bank_1999-08-01_15.csv.gz"
        raise NotFound(f"bank log not found at {where}")
    plan = replay_plan(read_log(log_path, "bank"), name="bank-replay", wrap_up_s=wrap_up_s)
    return Scenario(
        name=plan.name,
        description=f"replay of {log_path.name}",
        mode="simulate",
        seed=seed,
        replications=replications,
        target_service_level=0.8,
        plan=plan,
        source=str(log_path),
    )


def log_figures(
    contacts: Sequence[LoggedContact], target_s: float = BANK_TARGET_S
) -> dict[str, dict[str, float]]:
    """What the log itself shows per issue: offered, ASA, abandonment, service level."""
    out: dict[str, dict[str, float]] = {}
    for issue in sorted({issue_name(c.issue) for c in contacts}):
        rows = [c for c in contacts if issue_name(c.issue) == issue and c.outcome != "phantom"]
        served = [c for c in rows if c.outcome == "served"]
        out[issue] = {
            "offered": float(len(rows)),
            "asa_s": sum(c.wait_s for c in served) / len(served) if served else math.nan,
            "abandon_rate": (len(rows) - len(served)) / len(rows) if rows else math.nan,
            "service_level": sum(c.wait_s <= target_s for c in served) / len(rows)
            if rows
            else math.nan,
        }
    return out


def comparison(reps: Replications, scenario: Scenario) -> list[dict[str, Any]]:
    """Simulated and logged figures per issue, side by side (JSON-ready)."""
    logged = log_figures(read_log(Path(scenario.source), "bank"))
    rows = []
    for issue in reps.runs[0].issues:
        sim = {m: reps.by_issue(issue, m) for m in ("asa_s", "abandon_rate", "service_level")}
        rows.append(
            {
                "issue": issue,
                "offered": logged[issue]["offered"],
                **{f"log_{m}": logged[issue][m] for m in sim},
                **{f"sim_{m}": sim[m].mean for m in sim},
                **{f"sim_{m}_ci95": sim[m].half_width for m in sim},
            }
        )
    return rows


def compare_tables(rows: Sequence[dict[str, Any]]) -> Table:
    """The log and the simulation, per issue type."""
    table = Table(
        title="bank replay: log vs simulation, per issue (± = 95% CI)", title_justify="left"
    )
    for column in (
        "issue",
        "offered",
        "ASA log",
        "ASA sim",
        "abandon log",
        "abandon sim",
        "SL(20s) log",
        "SL(20s) sim",
    ):
        table.add_column(column, justify="left" if column == "issue" else "right")
    for r in rows:
        table.add_row(
            r["issue"],
            f"{r['offered']:,.0f}",
            f"{r['log_asa_s']:.1f}s",
            f"{r['sim_asa_s']:.1f}s ±{r['sim_asa_s_ci95']:.1f}",
            f"{100 * r['log_abandon_rate']:.1f}%",
            f"{100 * r['sim_abandon_rate']:.1f}% ±{100 * r['sim_abandon_rate_ci95']:.1f}",
            f"{100 * r['log_service_level']:.1f}%",
            f"{100 * r['sim_service_level']:.1f}% ±{100 * r['sim_service_level_ci95']:.1f}",
        )
    return table
