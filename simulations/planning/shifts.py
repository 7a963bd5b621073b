"""Which shifts to open: a CP-SAT covering model over shift templates, with breaks.

Variables (all integers, none per agent, which is why it solves fast):

* ``x[p, d]`` -- shifts of pattern p (a template at one of its start times) opened on day d;
* ``z[p, d, b, o]`` -- of those, how many take break b at offset o of its window (implicit
  break placement: breaks are not fixed variants of a template but counts within their window,
  so a template with three breaks of five positions each costs 15 variables, not 125);
* ``u[g, i]`` -- agents missing in skill group g in interval i (when under-staffing is soft);
* ``v[i]`` -- agents beyond the total requirement in interval i (when over-staffing costs).

Constraints:

* breaks: ``Σ_o z[p, d, b, o] = x[p, d]`` for every break b of p;
* coverage, counting an agent with several skills once: for every set S of groups connected
  by multi-skill teams (Hall's condition; disconnected sets follow from their parts), in
  every interval, agents on duty (on shift and not on break) of teams serving some group of S
  ≥ ``Σ_{g∈S} (r[g, i] − u[g, i])``; with hard coverage u is 0;
* over-staffing: agents on duty − Σ_g r[g, i] ≤ v[i];
* template limits: min and max shifts per day, max per week;
* headcount (when named agents are given), per team: shifts present in an interval ≤ agents,
  shifts per day ≤ agents available that day, shifts per week ≤ Σ max days, paid hours within
  [Σ contracted minimum, Σ maximum]; this keeps the rostering step feasible.

Objective: minimise Σ cost_per_hour × paid hours × x + under × Σ u + over × Σ v (in cents,
CP-SAT needs integers). Shifts crossing midnight cover the next day; in whole-week plans the
last night wraps onto day 0 (a repeating week).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import structlog
from numpy.typing import NDArray
from ortools.sat.python import cp_model

from simulations.planning.model import DAY_S, WEEKDAYS, Infeasible, PlanRequest
from simulations.planning.requirements import Requirements

log = structlog.get_logger(__name__)
Team = frozenset[str]


@dataclass(frozen=True, slots=True)
class Pattern:
    """A template at one start time."""

    template: int
    name: str
    team: Team
    start_s: float  # time of day
    length: int  # intervals
    breaks: tuple[tuple[int, int, int], ...]  # (earliest, latest offset, length) in intervals
    cost_cents: int
    paid_intervals: int


@dataclass(frozen=True, slots=True)
class OpenShift:
    """`count` shifts of one pattern on one day; `break_starts[j]` lists copy j's break
    starts as interval indices (absolute, possibly wrapped in cyclic plans)."""

    pattern: Pattern
    day: int
    count: int
    start: int  # absolute interval index of the start (not wrapped)
    break_starts: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class CoverSolution:
    """The shifts to open and what they give per interval."""

    shifts: tuple[OpenShift, ...]
    on_duty: dict[Team, NDArray[np.int64]]  # team -> agents taking contacts per interval
    under: dict[str, NDArray[np.int64]]  # group -> agents missing per interval
    cost: float  # shift cost (currency)
    objective: float
    bound: float
    status: str
    solve_s: float

    @property
    def gap(self) -> float:
        """Relative distance between the solution and the solver's lower bound."""
        return abs(self.objective - self.bound) / max(abs(self.objective), 1e-9)

    def staffed(self, group: str) -> NDArray[np.int64]:
        """Agents on duty able to serve `group` (a multi-skill agent counts in each group)."""
        n = len(next(iter(self.under.values())))
        out = np.zeros(n, dtype=np.int64)
        for team, counts in self.on_duty.items():
            if group in team:
                out += counts
        return out


def patterns(request: PlanRequest) -> list[Pattern]:
    """Every template at every allowed start."""
    step = request.interval_s
    out = []
    for t, tpl in enumerate(request.templates):
        breaks = tuple(
            (round(b.earliest_s / step), round(b.latest_s / step), round(b.length_s / step))
            for b in tpl.breaks
        )
        paid = round(tpl.paid_hours * 3600 / step)
        for start in tpl.starts_s:
            clock = f"{int(start // 3600):02d}:{int(start % 3600 // 60):02d}"
            out.append(
                Pattern(
                    t,
                    f"{tpl.name}@{clock}",
                    tpl.skills,
                    start,
                    round(tpl.length_s / step),
                    breaks,
                    round(tpl.cost_per_hour * tpl.paid_hours * 100),
                    paid,
                )
            )
    return out


def interval_name(request: PlanRequest, index: int) -> str:
    """``day 2 (tue) 09:30`` for an interval index."""
    day, rest = divmod(index * request.interval_s, DAY_S)
    weekday = request.weekday(int(day))
    return f"day {int(day) + 1} ({WEEKDAYS[weekday]}) {rest // 3600:02d}:{rest % 3600 // 60:02d}"


class _Model:
    """The covering model under construction (see the module docstring)."""

    def __init__(self, request: PlanRequest, req: Requirements) -> None:
        self.request, self.req = request, req
        self.n = request.intervals
        self.per_day = DAY_S // request.interval_s
        self.model = cp_model.CpModel()
        self.patterns = patterns(request)
        self.teams: list[Team] = sorted({p.team for p in self.patterns}, key=sorted)
        self.headcount = {t: [a for a in request.agents if a.skills == t] for t in self.teams}
        self.x: dict[tuple[int, int], cp_model.IntVar] = {}
        self.z: dict[tuple[int, int, int, int], cp_model.IntVar] = {}
        # team -> interval -> (vars, coefficients) of agents on duty
        self.duty: dict[Team, list[tuple[list[cp_model.IntVar], list[int]]]] = {
            t: [([], []) for _ in range(self.n)] for t in self.teams
        }
        self.present: dict[Team, list[list[cp_model.IntVar]]] = {
            t: [[] for _ in range(self.n)] for t in self.teams
        }

    def slot(self, index: int) -> int | None:
        if index < self.n:
            return index
        return index % self.n if self.request.cyclic else None

    def build_shifts(self) -> None:
        request = self.request
        upper = max(1, int(self.req.total().max(initial=0)) * 2 + 1)
        for p, pat in enumerate(self.patterns):
            tpl = request.templates[pat.template]
            cap = len(self.headcount[pat.team]) if request.agents else upper
            cap = min(cap, tpl.max_per_day if tpl.max_per_day is not None else cap)
            for d in range(request.days):
                if request.weekday(d) not in tpl.weekdays or cap <= 0:
                    continue
                var = self.model.new_int_var(0, cap, f"x_{p}_{d}")
                self.x[(p, d)] = var
                start = d * self.per_day + round(pat.start_s / request.interval_s)
                for j in range(pat.length):
                    k = self.slot(start + j)
                    if k is not None:
                        self.duty[pat.team][k][0].append(var)
                        self.duty[pat.team][k][1].append(1)
                        self.present[pat.team][k].append(var)
                for b, (lo, hi, length) in enumerate(pat.breaks):
                    choices = []
                    for o in range(lo, hi + 1):
                        zvar = self.model.new_int_var(0, cap, f"z_{p}_{d}_{b}_{o}")
                        self.z[(p, d, b, o)] = zvar
                        choices.append(zvar)
                        for j in range(o, o + length):
                            k = self.slot(start + j)
                            if k is not None:
                                self.duty[pat.team][k][0].append(zvar)
                                self.duty[pat.team][k][1].append(-1)
                    self.model.add(sum(choices) == var)

    def duty_expr(self, team: Team, k: int) -> cp_model.LinearExprT:
        variables, coefficients = self.duty[team][k]
        return cp_model.LinearExpr.weighted_sum(variables, coefficients)

    def connected_sets(self) -> list[tuple[str, ...]]:
        """Sets of groups joined by multi-skill teams: where Hall's condition binds."""
        groups = self.req.groups
        if len(groups) > 10:
            return [(g,) for g in groups]  # past 10 groups: per group only (documented)
        out = []
        for size in range(1, len(groups) + 1):
            for subset in itertools.combinations(groups, size):
                if size == 1 or _connected(set(subset), self.teams):
                    out.append(subset)
        return out

    def build_coverage(
        self,
    ) -> tuple[dict[tuple[str, int], cp_model.IntVar], list[cp_model.IntVar]]:
        request, req = self.request, self.req
        penalty = request.penalties
        under: dict[tuple[str, int], cp_model.IntVar] = {}
        for g in req.groups:
            for k in range(self.n):
                need = int(req.agents[g][k])
                if need > 0 and penalty.under is not None:
                    under[(g, k)] = self.model.new_int_var(0, need, f"u_{g}_{k}")
        for subset in self.connected_sets():
            teams = [t for t in self.teams if t & set(subset)]
            for k in range(self.n):
                need = sum(int(req.agents[g][k]) for g in subset)
                if need == 0:
                    continue
                supply = sum(self.duty_expr(t, k) for t in teams)
                slack = sum(under[(g, k)] for g in subset if (g, k) in under)
                self.model.add(supply + slack >= need)
        over: list[cp_model.IntVar] = []
        if penalty.over > 0:
            total = req.total()
            for k in range(self.n):
                v = self.model.new_int_var(0, 10**6, f"v_{k}")
                self.model.add(sum(self.duty_expr(t, k) for t in self.teams) - int(total[k]) <= v)
                over.append(v)
        return under, over

    def build_limits(self) -> None:
        request = self.request
        for t, tpl in enumerate(request.templates):
            mine = [p for p, pat in enumerate(self.patterns) if pat.template == t]
            week = []
            for d in range(request.days):
                day = [self.x[(p, d)] for p in mine if (p, d) in self.x]
                week += day
                if day and tpl.max_per_day is not None:
                    self.model.add(sum(day) <= tpl.max_per_day)
                if tpl.min_per_day and request.weekday(d) in tpl.weekdays:
                    self.model.add(sum(day) >= tpl.min_per_day)
            if week and tpl.max_per_week is not None:
                self.model.add(sum(week) <= tpl.max_per_week)
        if not request.agents:
            return
        step_h = request.interval_s / 3600.0
        for team in self.teams:
            agents = self.headcount[team]
            for k in range(self.n):
                if self.present[team][k]:
                    self.model.add(sum(self.present[team][k]) <= len(agents))
            mine = [p for p, pat in enumerate(self.patterns) if pat.team == team]
            week_vars: list[cp_model.IntVar] = []
            week_paid: list[int] = []
            for d in range(request.days):
                opened: list[tuple[cp_model.IntVar, int]] = [
                    (self.x[(p, d)], self.patterns[p].paid_intervals)
                    for p in mine
                    if (p, d) in self.x
                ]
                if not opened:
                    continue
                available = sum(1 for a in agents if request.weekday(d) in a.weekdays)
                self.model.add(sum(v for v, _ in opened) <= available)
                week_vars += [v for v, _ in opened]
                week_paid += [w for _, w in opened]
            weeks = max(1.0, request.days / 7.0)  # weekly limits hold in shorter plans
            if week_vars:
                self.model.add(sum(week_vars) <= round(sum(a.max_days for a in agents) * weeks))
                paid = cp_model.LinearExpr.weighted_sum(week_vars, week_paid)
                self.model.add(paid <= int(sum(a.max_hours for a in agents) * weeks / step_h))
                self.model.add(
                    paid >= int(np.ceil(sum(a.min_hours for a in agents) * weeks / step_h))
                )

    def objective(
        self, under: dict[tuple[str, int], cp_model.IntVar], over: list[cp_model.IntVar]
    ) -> None:
        penalty = self.request.penalties
        keys = list(self.x)
        costs = [self.patterns[p].cost_cents for p, _ in keys]
        terms = cp_model.LinearExpr.weighted_sum([self.x[k] for k in keys], costs)
        if under and penalty.under is not None:
            terms += round(penalty.under * 100) * sum(under.values())
        if over:
            terms += round(penalty.over * 100) * sum(over)
        self.model.minimize(terms)


def _connected(groups: set[str], teams: Sequence[Team]) -> bool:
    """Are `groups` one component when teams holding two of them join them?"""
    seen = {next(iter(groups))}
    changed = True
    while changed:
        changed = False
        for team in teams:
            inside = team & groups
            if len(inside) > 1 and inside & seen and not inside <= seen:
                seen |= inside
                changed = True
    return seen == groups


def precheck(request: PlanRequest, req: Requirements) -> None:
    """Infeasible (naming intervals and reason) when the demand cannot be met: no template on
    duty when a group needs agents, or more agents needed than hold the skill."""
    model = _Model(request, req)
    model.build_shifts()
    for g in req.groups:
        teams = [t for t in model.teams if g in t]
        bare = [
            k
            for k in range(model.n)
            if req.agents[g][k] > 0 and not any(model.duty[t][k][0] for t in teams)
        ]
        if bare:
            raise Infeasible(
                f"skill group {g!r} needs agents when no shift template for it is on duty "
                "(templates[].starts, length, weekdays)",
                tuple(interval_name(request, k) for k in bare),
            )
    if not request.agents:
        return
    for subset in model.connected_sets():
        holders = sum(1 for a in request.agents if a.skills & set(subset))
        short = [k for k in range(model.n) if sum(int(req.agents[g][k]) for g in subset) > holders]
        if short:
            peak = max(sum(int(req.agents[g][k]) for g in subset) for k in short)
            raise Infeasible(
                f"skill group {'+'.join(subset)!r} needs up to {peak} agents but only {holders} "
                "agents hold the skill (agents[].skills)",
                tuple(interval_name(request, k) for k in short),
            )


def solve_cover(request: PlanRequest, req: Requirements) -> CoverSolution:
    """Open the cheapest shifts covering `req` (module docstring: objective, constraints)."""
    began = time.perf_counter()
    model = _Model(request, req)
    model.build_shifts()
    under, over = model.build_coverage()
    model.build_limits()
    model.objective(under, over)
    solver = cp_model.CpSolver()
    params = solver.parameters
    params.max_time_in_seconds = request.solver.time_limit_s
    params.num_workers = request.solver.workers
    params.relative_gap_limit = request.solver.relative_gap
    params.random_seed = request.solver.seed
    status = solver.solve(model.model)
    name = solver.status_name(status)
    log.info(
        "cover_solved",
        status=name,
        seconds=round(time.perf_counter() - began, 3),
        variables=len(model.x) + len(model.z),
        objective=solver.objective_value if name in ("OPTIMAL", "FEASIBLE") else None,
    )
    if name == "INFEASIBLE":
        raise Infeasible(
            "the shift rules contradict each other: check templates[].min_per_day against the "
            "agents' availability, max_days and contracted hours (agents[].min_hours)"
        )
    if name not in ("OPTIMAL", "FEASIBLE"):
        raise Infeasible(
            f"no schedule found within {request.solver.time_limit_s:g} s (solver.time_limit)"
        )
    return _extract(model, solver, under, name, time.perf_counter() - began)


def _extract(
    model: _Model,
    solver: cp_model.CpSolver,
    under: dict[tuple[str, int], cp_model.IntVar],
    status: str,
    seconds: float,
) -> CoverSolution:
    request = model.request
    opened: list[tuple[Pattern, int, int, int]] = []  # pattern, day, start, count
    for (p, d), var in model.x.items():
        count = int(solver.value(var))
        if count:
            pat = model.patterns[p]
            opened.append(
                (pat, d, d * model.per_day + round(pat.start_s / request.interval_s), count)
            )
    starts: dict[tuple[int, int, int], int] = {}  # (shift, copy, break) -> break start
    for n, (pat, d, start, _) in enumerate(opened):
        p = model.patterns.index(pat)
        for b, (lo, hi, _) in enumerate(pat.breaks):
            offsets = [
                o
                for o in range(lo, hi + 1)
                for _ in range(int(solver.value(model.z[(p, d, b, o)])))
            ]
            for j, o in enumerate(offsets):
                starts[(n, j, b)] = start + o
    shifts = []
    on_duty = {t: np.zeros(model.n, dtype=np.int64) for t in model.teams}
    for n, (pat, d, start, count) in enumerate(opened):
        per_copy = tuple(
            tuple(starts[(n, j, b)] for b in range(len(pat.breaks))) for j in range(count)
        )
        shifts.append(OpenShift(pat, d, count, start, per_copy))
        for j in range(pat.length):
            k = model.slot(start + j)
            if k is not None:
                on_duty[pat.team][k] += count
        for copy in per_copy:
            for b, begin in enumerate(copy):
                for j in range(pat.breaks[b][2]):
                    k = model.slot(begin + j)
                    if k is not None:
                        on_duty[pat.team][k] -= 1
    missing = {g: np.zeros(model.n, dtype=np.int64) for g in model.req.groups}
    for (g, k), var in under.items():
        missing[g][k] = int(solver.value(var))
    cost = sum(s.count * s.pattern.cost_cents for s in shifts) / 100.0
    return CoverSolution(
        shifts=tuple(sorted(shifts, key=lambda s: (s.start, s.pattern.name))),
        on_duty=on_duty,
        under=missing,
        cost=cost,
        objective=solver.objective_value / 100.0,
        bound=solver.best_objective_bound / 100.0,
        status=status,
        solve_s=seconds,
    )
