"""Who works which shift: the opened shifts onto named agents over the plan, with CP-SAT.

Variables: ``y[a, s]`` = 1 when agent a works shift s (a pattern on a day; the copies of one
shift are interchangeable, so one Boolean per agent and shift, not per copy).

Constraints:

* every opened copy gets an agent, or counts as unfilled (penalised heavily, reported);
* an agent works only shifts of their exact skill set, on the weekdays they are available,
  starting no earlier and ending no later than their daily window;
* at most one shift starting per day; at least ``min_rest`` between the end of one shift and
  the start of the next (checked against the next two days, across the week's end in
  whole-week plans);
* at most ``max_days`` shifts and ``max_hours`` paid hours per week;
* contracted ``min_hours``: the shortfall is penalised (the covering model already opened
  enough paid hours for every team);
* fair weekends: the most weekend days any agent of a team works is minimised.

Objective: 10⁶ × unfilled copies + 10³ × hours short of contract (in intervals) + 10² × the
largest number of weekend days worked by one agent. Copies (and their breaks) then go to the
chosen agents in id order.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from ortools.sat.python import cp_model

from simulations.planning.model import Agent, PlanRequest
from simulations.planning.shifts import CoverSolution, OpenShift

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Assignment:
    """One agent on one shift copy; times are seconds from the plan's start (not wrapped)."""

    agent_id: str
    shift: str  # pattern name
    day: int
    start_s: float
    end_s: float
    breaks: tuple[tuple[float, float], ...]  # (start, end) seconds
    paid_hours: float
    skills: frozenset[str]


@dataclass(frozen=True)
class Roster:
    """The week's assignments and what is left unfilled."""

    assignments: tuple[Assignment, ...]
    unfilled: tuple[tuple[str, int, int], ...]  # (shift, day, copies)
    status: str
    solve_s: float

    def hours(self, agent_id: str) -> float:
        """Paid hours of one agent."""
        return sum(a.paid_hours for a in self.assignments if a.agent_id == agent_id)


def _copies(shift: OpenShift, step: int) -> list[Assignment]:
    pat = shift.pattern
    start_s = shift.start * step
    out = []
    for j in range(shift.count):
        breaks = tuple(
            (b * step, (b + pat.breaks[i][2]) * step) for i, b in enumerate(shift.break_starts[j])
        )
        out.append(
            Assignment(
                "",
                pat.name,
                shift.day,
                start_s,
                start_s + pat.length * step,
                breaks,
                pat.paid_intervals * step / 3600.0,
                pat.team,
            )
        )
    return out


def anonymous(request: PlanRequest, cover: CoverSolution) -> Roster:
    """Without named agents: one placeholder agent per shift copy."""
    assignments = []
    for shift in cover.shifts:
        for j, copy in enumerate(_copies(shift, request.interval_s)):
            name = f"{copy.shift}-d{shift.day + 1}-{j + 1}"
            assignments.append(Assignment(name, *_fields(copy)))
    return Roster(tuple(assignments), (), "ANONYMOUS", 0.0)


def _fields(
    a: Assignment,
) -> tuple[str, int, float, float, tuple[tuple[float, float], ...], float, frozenset[str]]:
    return (a.shift, a.day, a.start_s, a.end_s, a.breaks, a.paid_hours, a.skills)


def _may_work(agent: Agent, shift: OpenShift, request: PlanRequest) -> bool:
    pat = shift.pattern
    end_tod = pat.start_s + pat.length * request.interval_s
    return (
        agent.skills == pat.team
        and request.weekday(shift.day) in agent.weekdays
        and pat.start_s >= agent.earliest_start_s
        and end_tod <= agent.latest_end_s
    )


def build_roster(request: PlanRequest, cover: CoverSolution) -> Roster:
    """Assign the opened shifts to the named agents (module docstring: model)."""
    if not request.agents:
        return anonymous(request, cover)
    began = time.perf_counter()
    step, rules = request.interval_s, request.roster
    shifts: Sequence[OpenShift] = cover.shifts
    model = cp_model.CpModel()
    y: dict[tuple[int, int], cp_model.IntVar] = {}
    for a, agent in enumerate(request.agents):
        for s, shift in enumerate(shifts):
            if _may_work(agent, shift, request):
                y[(a, s)] = model.new_bool_var(f"y_{a}_{s}")
    unfilled = []
    for s, shift in enumerate(shifts):
        gap = model.new_int_var(0, shift.count, f"unfilled_{s}")
        unfilled.append(gap)
        model.add(
            sum(y[(a, s)] for a in range(len(request.agents)) if (a, s) in y) + gap == shift.count
        )
    horizon = request.intervals
    weeks = max(1.0, request.days / 7.0)
    shortfall, weekend_worked = [], {}
    for a, agent in enumerate(request.agents):
        mine = [s for s in range(len(shifts)) if (a, s) in y]
        for day in range(request.days):
            today = [y[(a, s)] for s in mine if shifts[s].day == day]
            if len(today) > 1:
                model.add(sum(today) <= 1)
        for s in mine:
            end = shifts[s].start + shifts[s].pattern.length
            for t in mine:
                later = shifts[t].start + (
                    horizon if request.cyclic and shifts[t].start < shifts[s].start else 0
                )
                if shifts[t].day != shifts[s].day and 0 <= later - end < rules.min_rest_s / step:
                    model.add_bool_or([y[(a, s)].Not(), y[(a, t)].Not()])
        model.add(sum(y[(a, s)] for s in mine) <= round(agent.max_days * weeks))
        paid = sum(y[(a, s)] * shifts[s].pattern.paid_intervals for s in mine)
        model.add(paid <= int(agent.max_hours * weeks * 3600 / step))
        short = model.new_int_var(0, int(agent.min_hours * weeks * 3600 / step) + 1, f"short_{a}")
        model.add(short >= int(agent.min_hours * weeks * 3600 / step) - paid)
        shortfall.append(short)
        weekend = [y[(a, s)] for s in mine if request.weekday(shifts[s].day) in rules.weekend]
        weekend_worked[a] = sum(weekend)
    most = model.new_int_var(0, request.days, "most_weekend_days")
    if rules.fair_weekends:
        for expr in weekend_worked.values():
            model.add(most >= expr)
    model.minimize(10**6 * sum(unfilled) + 10**3 * sum(shortfall) + 10**2 * most)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = rules.time_limit_s
    solver.parameters.num_workers = request.solver.workers
    solver.parameters.random_seed = request.solver.seed
    status = solver.solve(model)
    name = solver.status_name(status)
    log.info(
        "roster_solved",
        status=name,
        seconds=round(time.perf_counter() - began, 3),
        variables=len(y),
    )
    if name not in ("OPTIMAL", "FEASIBLE"):
        return Roster(
            (),
            tuple((s.pattern.name, s.day, s.count) for s in shifts),
            name,
            time.perf_counter() - began,
        )
    assignments, left = [], []
    for s, shift in enumerate(shifts):
        workers = [
            request.agents[a].id
            for a in range(len(request.agents))
            if (a, s) in y and solver.value(y[(a, s)])
        ]
        copies = _copies(shift, step)
        for agent_id, copy in zip(sorted(workers), copies, strict=False):
            assignments.append(Assignment(agent_id, *_fields(copy)))
        if len(workers) < shift.count:
            left.append((shift.pattern.name, shift.day, shift.count - len(workers)))
    return Roster(
        tuple(sorted(assignments, key=lambda x: (x.agent_id, x.start_s))),
        tuple(left),
        name,
        time.perf_counter() - began,
    )
