"""Plan files: YAML in, a checked `PlanRequest` out; every mistake names its line and field.

Example (``simulations/examples/plan_bank_week.yaml`` is a complete one)::

    name: bank-week
    interval: 30m                      # 15m, 30m or 1h
    days: 7
    start_date: 1999-08-16             # optional: else the day after the log ends
    opening: ["07:00", "24:00"]        # optional: no agents needed outside
    demand: {log: bank, method: profile, holdout_days: 7}   # or {forecast: file.csv}
    groups: [{name: retail, issues: [ps, pe, nw, tt]}, {name: stock, issues: [ne]}]
    target: {service_level: 0.8, answer_within: 20s, shrinkage: 0.1, max_occupancy: 0.95}
    answer_targets: {stock: 30s}       # optional, per group
    penalties: {under: 100, over: 0}   # per agent-interval; under: hard = coverage is a must
    templates:
      - {name: early, skills: [retail], starts: {from: "07:00", to: "09:00", every: 30m},
         length: 8h, cost_per_hour: 20, weekdays: [sun, mon, tue, wed, thu], max_per_day: 20,
         breaks: [{length: 30m, window: [3h, 5h], paid: false}]}
    agents:                            # optional: named agents (or `group` + `count`)
      - {id: anat, skills: [retail, stock], min_hours: 30, max_hours: 40, max_days: 5,
         weekdays: [sun, mon, tue, wed, thu], earliest_start: "07:00", latest_end: "24:00"}
    roster: {min_rest: 11h, weekend: [fri, sat], fair_weekends: true, time_limit: 20s}
    solver: {time_limit: 30s, workers: 8, gap: 0.005, seed: 0}
    loop: {iterations: 4, replications: 3, seed: 1, step: 1, enabled: true}

Relative paths are read from the plan file's folder, then from the working directory;
``log: bank`` is the bank log in ``../shared/data/``. A template without ``skills`` is
offered to every skill set the agents hold.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from router.errors import InvalidArgument, NotFound
from simulations.history import PRESETS, default_bank_log
from simulations.planning.forecast import METHODS
from simulations.planning.model import (
    WEEKDAYS,
    Agent,
    BreakRule,
    CsvDemand,
    LogDemand,
    LoopSettings,
    Penalties,
    PlanRequest,
    RosterRules,
    ShiftTemplate,
    SkillGroup,
    SolverSettings,
    Target,
    check_agent,
    check_template,
    validate,
)
from simulations.yamlfields import Field, ScenarioError, compose

_TOP = {
    "name",
    "interval",
    "days",
    "start_date",
    "opening",
    "demand",
    "groups",
    "target",
    "answer_targets",
    "penalties",
    "templates",
    "agents",
    "roster",
    "solver",
    "loop",
    "description",
}


def load_plan(path: Path) -> PlanRequest:
    """Read and check a plan file; ScenarioError names the line and field at fault."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(str(path), 0, "(file)", f"cannot read: {exc.strerror}") from exc
    return parse_plan(text, str(path), Path(path).resolve().parent)


def parse_plan(text: str, source: str = "<plan>", base: Path | None = None) -> PlanRequest:
    """Check a plan given as YAML text; relative paths resolve against `base`."""
    top = compose(text, source).mapping(_TOP, {"name", "demand", "groups", "templates"})
    step = int(top["interval"].duration(positive=True)) if "interval" in top else 1800
    if step not in (900, 1800, 3600):
        raise top["interval"].error("must be 15m, 30m or 1h")
    groups = tuple(_group(f) for f in top["groups"].sequence(True))
    names = {g.name for g in groups}
    agents = (
        tuple(a for f in top["agents"].sequence() for a in _agents(f, names))
        if "agents" in top
        else ()
    )
    skill_sets = sorted({a.skills for a in agents}, key=sorted)
    templates = tuple(
        t for f in top["templates"].sequence(True) for t in _templates(f, step, names, skill_sets)
    )
    request = PlanRequest(
        name=top["name"].text(),
        interval_s=step,
        days=top["days"].integer(1, 31) if "days" in top else 7,
        start_date=_date(top["start_date"]) if "start_date" in top else None,
        groups=groups,
        templates=templates,
        demand=_demand(top["demand"], base),
        agents=agents,
        target=_target(top["target"]) if "target" in top else Target(),
        penalties=_penalties(top["penalties"]) if "penalties" in top else Penalties(),
        roster=_roster(top["roster"]) if "roster" in top else RosterRules(),
        solver=_solver(top["solver"]) if "solver" in top else SolverSettings(),
        loop=_loop(top["loop"]) if "loop" in top else LoopSettings(),
        answer_targets={k: v.duration(positive=True) for k, v in top["answer_targets"].items()}
        if "answer_targets" in top
        else {},
        opening=_opening(top["opening"]) if "opening" in top else None,
    )
    for group in request.answer_targets:
        if group not in names:
            raise top["answer_targets"].error(
                f"unknown skill group {group!r}; known: {sorted(names)}"
            )
    try:
        return validate(request)
    except InvalidArgument as exc:
        raise ScenarioError(source, 1, exc.field, exc.problem) from exc


def _date(field: Field) -> date:
    value = field.scalar()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise field.error(f"expected a date like 1999-08-16, got {value!r}") from None


def _opening(field: Field) -> tuple[float, float]:
    items = field.sequence(True)
    if len(items) != 2:
        raise field.error("expected [from, to], e.g. ['07:00', '24:00']")
    low, high = items[0].duration(), items[1].duration()
    if not 0 <= low < high <= 86400:
        raise field.error("must open before it closes, within the day")
    return low, high


def _weekdays(field: Field) -> frozenset[int]:
    return frozenset(WEEKDAYS.index(f.choice(WEEKDAYS)) for f in field.sequence(True))


def _skills(field: Field, names: set[str]) -> frozenset[str]:
    skills = frozenset(f.text() for f in field.sequence(True))
    for skill in sorted(skills - names):
        raise field.error(f"unknown skill {skill!r}; skill groups: {sorted(names)}")
    return skills


def _group(field: Field) -> SkillGroup:
    spec = field.mapping({"name", "issues"}, {"name", "issues"})
    return SkillGroup(
        spec["name"].text(), tuple(f.text().lower() for f in spec["issues"].sequence(True))
    )


def _demand(field: Field, base: Path | None) -> LogDemand | CsvDemand:
    spec = field.mapping({"log", "mapping", "method", "holdout_days", "forecast"})
    if ("log" in spec) == ("forecast" in spec):
        raise field.error("give either 'log' (a contact log) or 'forecast' (a forecast CSV)")
    if "forecast" in spec:
        return CsvDemand(_path(spec["forecast"], base))
    name = spec["log"].text()
    if name == "bank":
        found = default_bank_log()
        if found is None:
            raise NotFound("demand.log: bank log not found in ../shared/data/")
        path = found
    else:
        path = _path(spec["log"], base)
    return LogDemand(
        path=path,
        mapping=spec["mapping"].choice(tuple(PRESETS)) if "mapping" in spec else "bank",
        method=spec["method"].choice(METHODS) if "method" in spec else "profile",
        holdout_days=spec["holdout_days"].integer(0, 60) if "holdout_days" in spec else 7,
    )


def _path(field: Field, base: Path | None) -> Path:
    raw = Path(field.text())
    for candidate in ([base / raw] if base and not raw.is_absolute() else []) + [raw]:
        if candidate.is_file():
            return candidate
    raise field.error(f"no such file: {raw}")


def _target(field: Field) -> Target:
    spec = field.mapping(
        {"service_level", "answer_within", "shrinkage", "max_occupancy", "patience"}
    )
    return Target(
        service_level=spec["service_level"].number(0.01, 1.0) if "service_level" in spec else 0.8,
        answer_within_s=spec["answer_within"].duration() if "answer_within" in spec else 20.0,
        shrinkage=spec["shrinkage"].number(0.0, 0.9) if "shrinkage" in spec else 0.0,
        max_occupancy=spec["max_occupancy"].number(0.05, 1.0) if "max_occupancy" in spec else None,
        patience_s=spec["patience"].duration(positive=True) if "patience" in spec else None,
    )


def _penalties(field: Field) -> Penalties:
    spec = field.mapping({"under", "over"})
    under: float | None = 100.0
    if "under" in spec:
        under = None if spec["under"].scalar() == "hard" else spec["under"].number(0.0, 1e7)
    return Penalties(under, spec["over"].number(0.0, 1e7) if "over" in spec else 0.0)


def _starts(field: Field) -> tuple[float, ...]:
    if field.is_sequence():
        return tuple(f.duration() for f in field.sequence(True))
    if field.is_scalar():
        return (field.duration(),)
    spec = field.mapping({"from", "to", "every"}, {"from", "to", "every"})
    low, high, every = spec["from"].duration(), spec["to"].duration(), spec["every"].duration(True)
    if high < low:
        raise spec["to"].error("ends before 'from'")
    count = int((high - low) // every) + 1
    return tuple(low + k * every for k in range(count))


def _templates(
    field: Field, step: int, names: set[str], skill_sets: list[frozenset[str]]
) -> list[ShiftTemplate]:
    spec = field.mapping(
        {
            "name",
            "skills",
            "starts",
            "length",
            "cost_per_hour",
            "breaks",
            "weekdays",
            "max_per_day",
            "min_per_day",
            "max_per_week",
        },
        {"name", "starts", "length"},
    )
    if "skills" in spec:
        teams = [_skills(spec["skills"], names)]
    elif skill_sets:
        teams = skill_sets
    elif len(names) == 1:
        teams = [frozenset(names)]
    else:
        raise field.error("missing field 'skills' (which skill groups work this shift)")
    breaks = []
    for b in spec["breaks"].sequence() if "breaks" in spec else []:
        bs = b.mapping({"length", "window", "paid"}, {"length", "window"})
        window = bs["window"].sequence(True)
        if len(window) != 2:
            raise bs["window"].error("expected [earliest, latest] start after the shift starts")
        breaks.append(
            BreakRule(
                bs["length"].duration(True),
                window[0].duration(),
                window[1].duration(),
                bs["paid"].boolean() if "paid" in bs else False,
            )
        )
    out = []
    for team in teams:
        suffix = "" if len(teams) == 1 else "/" + "+".join(sorted(team))
        tpl = ShiftTemplate(
            name=spec["name"].text() + suffix,
            skills=team,
            starts_s=_starts(spec["starts"]),
            length_s=spec["length"].duration(True),
            cost_per_hour=spec["cost_per_hour"].number(0.0, 1e6)
            if "cost_per_hour" in spec
            else 1.0,
            breaks=tuple(breaks),
            weekdays=_weekdays(spec["weekdays"]) if "weekdays" in spec else frozenset(range(7)),
            max_per_day=spec["max_per_day"].integer(0, 10**5) if "max_per_day" in spec else None,
            min_per_day=spec["min_per_day"].integer(0, 10**5) if "min_per_day" in spec else 0,
            max_per_week=spec["max_per_week"].integer(0, 10**6) if "max_per_week" in spec else None,
        )
        try:
            check_template(field.path, tpl, step, names)
        except InvalidArgument as exc:
            key = exc.field[len(field.path) + 1 :].split(".")[0].split("[")[0]
            raise (spec.get(key) or field).error(f"{exc.field}: {exc.problem}") from exc
        out.append(tpl)
    return out


def _agents(field: Field, names: set[str]) -> list[Agent]:
    spec = field.mapping(
        {
            "id",
            "group",
            "count",
            "skills",
            "min_hours",
            "max_hours",
            "max_days",
            "weekdays",
            "earliest_start",
            "latest_end",
        },
        {"skills"},
    )
    if ("id" in spec) == ("group" in spec):
        raise field.error("give either 'id' (one agent) or 'group' with 'count'")
    ids = (
        [spec["id"].text()]
        if "id" in spec
        else [
            f"{spec['group'].text()}-{k + 1:02d}"
            for k in range(spec["count"].integer(1, 10_000) if "count" in spec else 1)
        ]
    )
    agents = []
    for agent_id in ids:
        agent = Agent(
            id=agent_id,
            skills=_skills(spec["skills"], names),
            min_hours=spec["min_hours"].number(0, 168) if "min_hours" in spec else 0.0,
            max_hours=spec["max_hours"].number(0, 168) if "max_hours" in spec else 40.0,
            max_days=spec["max_days"].integer(0, 7) if "max_days" in spec else 5,
            weekdays=_weekdays(spec["weekdays"]) if "weekdays" in spec else frozenset(range(7)),
            earliest_start_s=spec["earliest_start"].duration() if "earliest_start" in spec else 0.0,
            latest_end_s=spec["latest_end"].duration() if "latest_end" in spec else 2 * 86400.0,
        )
        try:
            check_agent(field.path, agent, names)
        except InvalidArgument as exc:
            raise field.error(f"{exc.field}: {exc.problem}") from exc
        agents.append(agent)
    return agents


def _roster(field: Field) -> RosterRules:
    spec = field.mapping({"min_rest", "weekend", "fair_weekends", "time_limit"})
    base = RosterRules()
    return RosterRules(
        min_rest_s=spec["min_rest"].duration() if "min_rest" in spec else base.min_rest_s,
        weekend=_weekdays(spec["weekend"]) if "weekend" in spec else base.weekend,
        fair_weekends=spec["fair_weekends"].boolean() if "fair_weekends" in spec else True,
        time_limit_s=spec["time_limit"].duration(True)
        if "time_limit" in spec
        else base.time_limit_s,
    )


def _solver(field: Field) -> SolverSettings:
    spec = field.mapping({"time_limit", "workers", "gap", "seed"})
    base = SolverSettings()
    return SolverSettings(
        time_limit_s=spec["time_limit"].duration(True)
        if "time_limit" in spec
        else base.time_limit_s,
        workers=spec["workers"].integer(1, 64) if "workers" in spec else base.workers,
        relative_gap=spec["gap"].number(0.0, 1.0) if "gap" in spec else base.relative_gap,
        seed=spec["seed"].integer(0, 2**31) if "seed" in spec else 0,
    )


def _loop(field: Field) -> LoopSettings:
    spec = field.mapping({"iterations", "replications", "seed", "step", "enabled"})
    return LoopSettings(
        max_iterations=spec["iterations"].integer(1, 50) if "iterations" in spec else 4,
        replications=spec["replications"].integer(1, 100) if "replications" in spec else 3,
        seed=spec["seed"].integer(0, 2**31) if "seed" in spec else 1,
        step=spec["step"].integer(1, 100) if "step" in spec else 1,
        enabled=spec["enabled"].boolean() if "enabled" in spec else True,
    )
