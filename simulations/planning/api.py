"""The planning API: ``plan(request, progress) -> PlanResult``, from demand to a confirmed week.

Stages: forecast (and its backtest against the naive baseline), requirements, then up to
``loop.max_iterations`` rounds of covering → rostering → simulation, raising the requirement
of every interval that missed. A servicer wraps it as is: `progress` receives `PlanProgress`
values (stage, iteration, fraction) it can stream, and the result is plain data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import structlog

from simulations.history import read_log
from simulations.planning.forecast import (
    Accuracy,
    Forecast,
    backtest,
    count_history,
    forecast_log,
    forecast_rows,
)
from simulations.planning.loop import Check, check
from simulations.planning.model import CsvDemand, PlanRequest, validate
from simulations.planning.requirements import Requirements, compute_requirements
from simulations.planning.roster import Roster, build_roster
from simulations.planning.shifts import CoverSolution, precheck, solve_cover
from simulations.staffing import read_forecast

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PlanProgress:
    """A step of the work: what runs now, in which iteration, and how far along (0..1)."""

    stage: str  # forecast | requirements | cover | roster | simulate | done
    iteration: int
    fraction: float
    message: str = ""


ProgressCallback = Callable[[PlanProgress], None]


@dataclass(frozen=True, slots=True)
class Iteration:
    """One round of the loop: the schedule solved and what the simulation said of it."""

    index: int
    cost: float
    objective: float
    bound: float
    gap: float
    status: str
    solve_s: float
    shifts: int
    agents_short: int  # agent-intervals the covering model left uncovered
    misses: int  # intervals (× groups) below target in simulation
    min_service_level: float
    added: int  # agents added to the requirement for the next round


@dataclass(frozen=True)
class PlanResult:
    """Everything planned: forecast, requirement, schedule, roster, and its confirmation."""

    request: PlanRequest
    forecast: Forecast
    accuracy: Accuracy | None
    base: Requirements  # from Erlang
    requirements: Requirements  # after the loop's raises
    cover: CoverSolution
    roster: Roster
    check: Check | None
    iterations: tuple[Iteration, ...]
    seconds: float

    @property
    def meets_target(self) -> bool:
        """Did the final simulation find no interval below target?"""
        return self.check is not None and not self.check.misses


def _forecast(request: PlanRequest) -> tuple[Forecast, Accuracy | None]:
    demand = request.demand
    if isinstance(demand, CsvDemand):
        rows = read_forecast(demand.path)
        return forecast_rows(rows, request.interval_s, request.days), None
    contacts = read_log(demand.path, demand.mapping)
    history = count_history(contacts, request.interval_s)
    accuracy = (
        backtest(history, demand.holdout_days, demand.method) if demand.holdout_days else None
    )
    made = forecast_log(
        contacts, request.interval_s, request.start_date, request.days, demand.method
    )
    return made, accuracy


def plan(request: PlanRequest, progress: ProgressCallback | None = None) -> PlanResult:
    """Plan the week; raises InvalidArgument for bad input and Infeasible for unmeetable demand."""
    began = time.perf_counter()

    def say(stage: str, iteration: int, fraction: float, message: str = "") -> None:
        if progress is not None:
            progress(PlanProgress(stage, iteration, min(1.0, fraction), message))

    validate(request)
    say("forecast", 0, 0.0, "forecasting demand")
    forecast, accuracy = _forecast(request)
    request = replace(request, start_date=forecast.start)
    say("requirements", 0, 0.05, "Erlang staffing per interval")
    base = compute_requirements(request, forecast)
    precheck(request, base)
    req, iterations = base, []
    loops = request.loop.max_iterations if request.loop.enabled else 1
    cover = roster = verdict = None
    for i in range(1, loops + 1):
        share = 0.1 + 0.9 * (i - 1) / loops
        say("cover", i, share, f"iteration {i}: solving the shift covering model")
        cover = solve_cover(request, req)
        say("roster", i, share + 0.2 / loops, f"iteration {i}: rostering named agents")
        roster = build_roster(request, cover)
        verdict = None
        added: dict[tuple[str, int], int] = {}
        if request.loop.enabled:
            say("simulate", i, share + 0.3 / loops, f"iteration {i}: simulating the schedule")

            def step(done: float, i: int = i, share: float = share) -> None:
                say("simulate", i, share + (0.3 + 0.7 * done) / loops)

            verdict = check(request, forecast, roster, req, step)
            added = _raises(request, req, verdict)
        levels = [
            float(level[k])
            for g, level in (verdict.service_level.items() if verdict else ())
            for k in range(len(level))
            if req.agents[g][k] > 0 and level[k] == level[k]
        ]
        iterations.append(
            Iteration(
                i,
                cover.cost,
                cover.objective,
                cover.bound,
                cover.gap,
                cover.status,
                cover.solve_s,
                sum(s.count for s in cover.shifts),
                int(sum(u.sum() for u in cover.under.values())),
                len(verdict.misses) if verdict else 0,
                min(levels, default=float("nan")),
                sum(added.values()),
            )
        )
        log.info("plan_iteration", **{k: getattr(iterations[-1], k) for k in Iteration.__slots__})
        if not added:
            break
        if i < loops:
            req = req.raised(added)
    assert cover is not None and roster is not None
    say("done", len(iterations), 1.0, "done")
    return PlanResult(
        request,
        forecast,
        accuracy,
        base,
        req,
        cover,
        roster,
        verdict,
        tuple(iterations),
        time.perf_counter() - began,
    )


def _raises(request: PlanRequest, req: Requirements, verdict: Check) -> dict[tuple[str, int], int]:
    """One more step of agents where an interval missed, while agents with the skill remain."""
    added = {}
    for group, k in verdict.misses:
        holders = sum(1 for a in request.agents if group in a.skills) if request.agents else None
        if holders is None or req.agents[group][k] + request.loop.step <= holders:
            added[(group, k)] = request.loop.step
    return added
