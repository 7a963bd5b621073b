"""The words of shift planning as plain, validated values: skill groups, shift templates with
their breaks, named agents and their contracts, targets, penalties and solver settings.

Time is in seconds. A plan covers `days` consecutive days from `start_date`; day 0 starts at
0 s. Time-of-day values (a template's start, an agent's earliest start) are seconds after
midnight; break offsets are seconds after the shift's start. Everything a model needs is here,
so the solvers, the simulator adapter and a gRPC servicer can all be handed one `PlanRequest`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from router.errors import Conflict, InvalidArgument

DAY_S = 86_400
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Infeasible(Conflict):
    """The plan cannot meet its demand; the message names the intervals and the reason."""

    def __init__(self, reason: str, intervals: tuple[str, ...] = ()) -> None:
        shown = ", ".join(intervals[:8]) + (
            f" (+{len(intervals) - 8} more)" if len(intervals) > 8 else ""
        )
        super().__init__(f"{reason}" + (f": {shown}" if intervals else ""))
        self.reason = reason
        self.intervals = intervals


@dataclass(frozen=True, slots=True)
class SkillGroup:
    """Issues served by agents holding one skill; requirements are computed per group."""

    name: str
    issues: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BreakRule:
    """A break of `length_s` starting between `earliest_s` and `latest_s` after the shift
    starts (on interval boundaries); unpaid breaks are not costed."""

    length_s: float
    earliest_s: float
    latest_s: float
    paid: bool = False


@dataclass(frozen=True, slots=True)
class ShiftTemplate:
    """A kind of shift: allowed start times of day, a length, breaks and limits, for the
    agents of one skill set (`skills`, the groups they serve)."""

    name: str
    skills: frozenset[str]
    starts_s: tuple[float, ...]  # time of day; a start + length past midnight crosses it
    length_s: float
    cost_per_hour: float = 1.0
    breaks: tuple[BreakRule, ...] = ()
    weekdays: frozenset[int] = frozenset(range(7))  # 0 = Monday
    max_per_day: int | None = None
    min_per_day: int = 0
    max_per_week: int | None = None

    @property
    def paid_hours(self) -> float:
        """Hours paid per shift: its length less its unpaid breaks."""
        unpaid = sum(b.length_s for b in self.breaks if not b.paid)
        return (self.length_s - unpaid) / 3600.0


@dataclass(frozen=True, slots=True)
class Agent:
    """A named agent: skills (group names), contract and availability over the week."""

    id: str
    skills: frozenset[str]
    min_hours: float = 0.0  # contracted hours per week (the roster tries to give them)
    max_hours: float = 40.0
    max_days: int = 5
    weekdays: frozenset[int] = frozenset(range(7))  # days they may work (0 = Monday)
    earliest_start_s: float = 0.0  # time of day
    latest_end_s: float = 2 * DAY_S  # time of day, may pass midnight (e.g. 26h = 02:00)


@dataclass(frozen=True, slots=True)
class RosterRules:
    """Rules binding every named agent."""

    min_rest_s: float = 11 * 3600.0
    weekend: frozenset[int] = frozenset({5, 6})  # Saturday, Sunday
    fair_weekends: bool = True
    time_limit_s: float = 20.0


@dataclass(frozen=True, slots=True)
class Target:
    """The service level asked of every interval, and how agents are grossed up."""

    service_level: float = 0.8
    answer_within_s: float = 20.0
    shrinkage: float = 0.0
    max_occupancy: float | None = None
    patience_s: float | None = None  # default patience when the demand gives none


@dataclass(frozen=True, slots=True)
class Penalties:
    """Cost of one agent too few (None: coverage is a hard constraint) or too many in one
    interval, in the currency of `cost_per_hour`."""

    under: float | None = 100.0
    over: float = 0.0


@dataclass(frozen=True, slots=True)
class SolverSettings:
    """CP-SAT limits: wall time, search workers, and the relative gap that is good enough.

    Eight workers even on two cores: with breaks the covering LP turns fractional, and what
    finds good schedules is the diversity of CP-SAT's eight-worker portfolio (LP-guided,
    core-based and LNS workers), not parallel speed; two workers stall at gaps of 1–15%.
    """

    time_limit_s: float = 30.0
    workers: int = 8
    relative_gap: float = 0.005
    seed: int = 0


@dataclass(frozen=True, slots=True)
class LoopSettings:
    """Simulation in the loop: iterations, replications per check, seed."""

    max_iterations: int = 4
    replications: int = 3
    seed: int = 1
    step: int = 1  # agents added to an interval that misses its target
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class LogDemand:
    """Forecast the demand from a contact log (issue 3's importer)."""

    path: Path
    mapping: str = "bank"
    method: str = "profile"
    holdout_days: int = 7


@dataclass(frozen=True, slots=True)
class CsvDemand:
    """A ready forecast: the CSV of ``simulations.staffing`` with ISO date-time intervals."""

    path: Path


@dataclass(frozen=True)
class PlanRequest:
    """Everything `plan()` needs: what to plan, for whom, under which rules."""

    name: str
    interval_s: int
    days: int
    start_date: date | None  # None: the day after the log ends
    groups: tuple[SkillGroup, ...]
    templates: tuple[ShiftTemplate, ...]
    demand: LogDemand | CsvDemand
    agents: tuple[Agent, ...] = ()
    target: Target = Target()
    penalties: Penalties = Penalties()
    roster: RosterRules = RosterRules()
    solver: SolverSettings = SolverSettings()
    loop: LoopSettings = LoopSettings()
    answer_targets: Mapping[str, float] = field(default_factory=dict)  # group -> seconds
    opening: tuple[float, float] | None = None  # open from, to (time of day); None: always
    wrap: bool = True  # in whole-week plans, the last night's shifts cover day 0

    @property
    def intervals(self) -> int:
        """Intervals in the plan."""
        return self.days * DAY_S // self.interval_s

    @property
    def cyclic(self) -> bool:
        """Whole weeks wrap around: a shift crossing the last midnight covers day 0."""
        return self.wrap and self.days % 7 == 0

    def weekday(self, day: int) -> int:
        """Weekday (0 = Monday) of plan day `day`; without a start date day 0 is a Monday."""
        if self.start_date is None:
            return day % 7
        return (self.start_date.toordinal() + day - 1) % 7

    def group_of(self, issue: str) -> str | None:
        """The skill group serving `issue`, if any."""
        return next((g.name for g in self.groups if issue in g.issues), None)


def validate(request: PlanRequest) -> PlanRequest:
    """`request` if its parts fit together, else InvalidArgument naming the field."""
    step = request.interval_s
    if step not in (900, 1800, 3600):
        raise InvalidArgument("interval", f"must be 15m, 30m or 1h, got {step} s")
    if not 1 <= request.days <= 31:
        raise InvalidArgument("days", f"must be 1..31, got {request.days}")
    names = {g.name for g in request.groups}
    if not request.templates:
        raise InvalidArgument("templates", "at least one shift template")
    for i, tpl in enumerate(request.templates):
        check_template(f"templates[{i}]", tpl, step, names)
    for i, agent in enumerate(request.agents):
        check_agent(f"agents[{i}]", agent, names)
    return request


def check_template(where: str, tpl: ShiftTemplate, step: int, names: set[str]) -> None:
    """InvalidArgument naming the field of `tpl` at fault, if any."""
    if not tpl.starts_s:
        raise InvalidArgument(f"{where}.starts", "at least one start time")
    if not 0 < tpl.length_s <= DAY_S:
        raise InvalidArgument(
            f"{where}.length", f"a shift lasts at most a day (24h), got {tpl.length_s / 3600:g}h"
        )
    _aligned(f"{where}.length", tpl.length_s, step)
    for start in tpl.starts_s:
        if not 0 <= start < DAY_S:
            raise InvalidArgument(f"{where}.starts", f"must be a time of day, got {start:g} s")
        _aligned(f"{where}.starts", start, step)
    if not tpl.skills:
        raise InvalidArgument(f"{where}.skills", "names no skill group")
    for skill in sorted(tpl.skills - names):
        raise InvalidArgument(
            f"{where}.skills", f"unknown skill group {skill!r}; known: {sorted(names)}"
        )
    for j, rule in enumerate(tpl.breaks):
        _check_break(f"{where}.breaks[{j}]", rule, tpl.length_s, step)
        if j and rule.earliest_s < tpl.breaks[j - 1].latest_s + tpl.breaks[j - 1].length_s:
            raise InvalidArgument(
                f"{where}.breaks[{j}].window", "overlaps the window of the break before it"
            )
    if tpl.max_per_day is not None and tpl.max_per_day < tpl.min_per_day:
        raise InvalidArgument(f"{where}.max_per_day", "is below min_per_day")
    if tpl.cost_per_hour < 0:
        raise InvalidArgument(f"{where}.cost_per_hour", "must not be negative")


def check_agent(where: str, agent: Agent, names: set[str]) -> None:
    """InvalidArgument naming the field of `agent` at fault, if any."""
    if not agent.skills:
        raise InvalidArgument(f"{where}.skills", "names no skill group")
    for skill in sorted(agent.skills - names):
        raise InvalidArgument(
            f"{where}.skills", f"unknown skill group {skill!r}; known: {sorted(names)}"
        )
    if agent.min_hours > agent.max_hours:
        raise InvalidArgument(f"{where}.min_hours", "is above max_hours")


def _check_break(where: str, rule: BreakRule, length_s: float, step: int) -> None:
    _aligned(f"{where}.length", rule.length_s, step)
    _aligned(f"{where}.window", rule.earliest_s, step)
    _aligned(f"{where}.window", rule.latest_s, step)
    if rule.length_s <= 0:
        raise InvalidArgument(f"{where}.length", "must be positive")
    if rule.latest_s < rule.earliest_s:
        raise InvalidArgument(f"{where}.window", "ends before it starts")
    if rule.earliest_s <= 0 or rule.latest_s + rule.length_s >= length_s:
        raise InvalidArgument(
            f"{where}.window",
            f"break outside its shift: it may run {rule.earliest_s / 3600:g}h–"
            f"{(rule.latest_s + rule.length_s) / 3600:g}h into a {length_s / 3600:g}h shift",
        )


def _aligned(where: str, seconds: float, step: int) -> None:
    if not math.isclose(seconds / step, round(seconds / step), abs_tol=1e-9):
        raise InvalidArgument(
            where, f"{seconds / 60:g} min is not a multiple of the {step // 60}-minute interval"
        )
