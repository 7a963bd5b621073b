"""Validation of the simulator: against Erlang C and Erlang A, and against the bank log.

``omniroute simulate --validate`` runs it. Single-skill cases, where queueing theory is
exact, must land within the 95% confidence interval of the simulated mean; the bank replay
is set beside what the log itself shows, with and without after-call work (which a log of
talk times does not show), so the gap and its main cause can be read off.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from rich.table import Table

from router.domain import AgentId, Channel
from router.rules import Rule, RuleBook
from simulations.erlang import asa_c, erlang_a, service_level_c
from simulations.models import NEVER, Exponential, Stream
from simulations.plan import AgentSpec, Plan
from simulations.results import Estimate, replicate

TARGET_S = 20.0


@dataclass(frozen=True, slots=True)
class Case:
    """One single-skill queue: arrivals per second, mean handle, agents, mean patience."""

    name: str
    rate_per_s: float
    aht_s: float
    servers: int
    patience_s: float | None = None


CASES = (
    Case("M/M/5, 80%", 4 / 60, 60.0, 5),
    Case("M/M/10, 90%", 9 / 60, 60.0, 10),
    Case("M/M/50, 85%", 42.5 / 60, 60.0, 50),
    Case("M/M/5+M, 100%, patience 1 min", 5 / 60, 60.0, 5, 60.0),
    Case("M/M/10+M, 100%, patience 2 min", 10 / 60, 60.0, 10, 120.0),
    Case("M/M/10+M, 120%, patience 3 min", 12 / 60, 60.0, 10, 180.0),
)


def case_plan(case: Case, horizon_s: float = 12 * 3600.0) -> Plan:
    """The simulator's model of a single-skill case. The first hour is warm-up: a run
    starts empty, and near 90% occupancy the queue takes a while to reach its steady state
    (the confidence interval does not cover that bias, the warm-up removes it)."""
    rule = Rule(
        issue="billing",
        skills=MappingProxyType({"billing": 1}),
        answer_target_s=MappingProxyType({Channel.VOICE: TARGET_S}),
    )
    agents = tuple(
        AgentSpec(
            AgentId(f"a{k:03d}"),
            "agents",
            MappingProxyType({"billing": 3}),
            MappingProxyType({Channel.VOICE: 1}),
            ((0.0, math.inf),),
        )
        for k in range(case.servers)
    )
    patience = NEVER if case.patience_s is None else Exponential(case.patience_s)
    stream = Stream(
        "billing", Channel.VOICE, (case.rate_per_s,), horizon_s, Exponential(case.aht_s), patience
    )
    return Plan(
        agents=agents,
        rules=RuleBook([rule]),
        horizon_s=horizon_s,
        interval_s=horizon_s,
        streams=(stream,),
        warmup_s=3600.0,
        name=case.name,
    )


def theory(case: Case) -> dict[str, float]:
    """Erlang C (no patience) or Erlang A figures of a case."""
    if case.patience_s is None:
        return {
            "service_level": service_level_c(case.rate_per_s, case.aht_s, case.servers, TARGET_S),
            "asa_s": asa_c(case.rate_per_s, case.aht_s, case.servers),
            "abandon_rate": 0.0,
        }
    a = erlang_a(case.rate_per_s, case.aht_s, case.patience_s, case.servers, TARGET_S)
    return {"service_level": a.service_level, "asa_s": a.asa_s, "abandon_rate": a.abandon_rate}


def validate_cases(
    replications: int = 20, seed: int = 1, progress: Callable[[float], None] | None = None
) -> list[dict[str, Any]]:
    """Each case simulated and compared; `within` says the formula lies in the 95% CI."""
    rows = []
    for index, case in enumerate(CASES):
        reps = replicate(case_plan(case), replications, seed)
        expected = theory(case)
        for measure, value in expected.items():
            sim: Estimate = reps.total(measure)
            rows.append(
                {
                    "case": case.name,
                    "measure": measure,
                    "theory": value,
                    "simulated": sim.mean,
                    "ci95": sim.half_width,
                    "within": sim.covers(value, slack=1e-9),
                }
            )
        if progress is not None:
            progress((index + 1) / len(CASES))
    return rows


def cases_table(rows: list[dict[str, Any]]) -> Table:
    """The single-skill comparison as a table."""
    table = Table(
        title="simulator vs queueing theory (Erlang C / Erlang A), SL target 20 s",
        title_justify="left",
    )
    for column in ("case", "measure", "theory", "simulated (95% CI)", "within CI"):
        table.add_column(column, justify="left" if column in ("case", "measure") else "right")
    for r in rows:
        percent = r["measure"] != "asa_s"
        scale, unit = (100.0, "%") if percent else (1.0, "s")
        table.add_row(
            r["case"],
            r["measure"],
            f"{r['theory'] * scale:.2f}{unit}",
            f"{r['simulated'] * scale:.2f}{unit} ±{r['ci95'] * scale:.2f}",
            "yes" if r["within"] else "[red]no[/]",
        )
    return table
