"""Scenarios: a planner's YAML file, checked field by field, turned into a `Plan`.

Every mistake is reported as ``file:line: field: problem``. Durations are seconds or
``"30s"``, ``"5m"``, ``"2h"``, ``"1d"``, ``"08:30"``. The schema (``simulations/examples/``
has complete files)::

    name: my-day                      # required
    description: free text
    mode: simulate                    # simulate | headline (silos vs omnichannel)
    seed: 1                           # same seed, same figures
    replications: 5                   # independent runs, for 95% confidence intervals
    horizon: 10h                      # arrivals stop then; waiting contacts still drain
    interval: 15m                     # reporting interval, and the step of `per_hour` lists
    warmup: 0                         # contacts arriving earlier are left out of totals
    policy: rules                     # rules | omniroute | longest_idle | best_skill | sticky
    weights: {proficiency: 1, idle: 1, occupancy: 0.5, affinity: 2}   # overrides policy
    history: shared                   # shared | per_channel | none (what agents can see)
    target_service_level: 0.8         # for the staffing requirement and `agents needed`
    streams:                          # required: who arrives, when, and how long they take
      - {issue: billing, channel: voice, per_hour: 120,       # or a list, one per interval
         handle: {dist: lognormal, mean: 5m, sd: 4m},         # exponential|lognormal|
         patience: {dist: exponential, mean: 3m},             #   empirical (values)|fixed
         priority: 0, language: he}                           # patience omitted: never
    rules:                            # optional; an issue without one needs skill <issue>
      - {issue: billing, skills: {billing: 2}, service_level: 0.8, targets: {voice: 20s},
         agent_groups: [blended],                             # optional: these groups only
         steps: [{after: 0s, service_level_below: 0.8,        # steps lower skills and/or
                  skills: {billing: 1}},                      #   widen to more groups, on
                 {after: 30s, skills: {billing: 1}},          #   waiting time, and queue
                 {after: 2m, add_agent_groups: [backoffice]}],#   state: expected_wait_over,
                                                              #   eligible_agents_at_most
         bot_first: true,                                     # a bot takes it first, then:
         bot: {containment: 0.4,                              #   share the bot resolves
               handle: {dist: lognormal, mean: 2m, sd: 1m}}}  #   time with the bot
    agents:                           # required
      - {group: blended, count: 12, skills: {billing: 3}, capacity: {voice: 1, chat: 2},
         exclusive_channels: true, shifts: [{start: 0, end: 8h, breaks: [{at: 4h, length: 30m}]}]}
      - {group: backoffice, count: 4, skills: {billing: 1}, capacity: {voice: 1}}
      - {group: assistant, kind: bot, skills: {billing: 1}, capacity: {chat: 1}}  # count: 1
    journeys:                         # optional: unresolved contacts come back
      {base: 0.75, per_level: 0.04, with_history: 0.12, same_agent: 0.03,
       return_delay: {dist: exponential, mean: 2h}, switch_channel: 0.4,
       switch_to: {voice: 1, chat: 1}, abandon_retry: 0.3, max_contacts: 4}

Agent groups: an agent's ``group`` is its agent group, as in the live service. A rule with
``agent_groups`` routes only to agents of those groups (without: to every group); a step's
``add_agent_groups`` widens it once the contact has waited ``after`` (such a step needs no
``skills``), e.g. to an overflow team. Every group named must have people in it (a typo
would route nothing), and a step may only lower requirements or add groups.

Queue-state steps: besides ``after``, a step may name ``expected_wait_over`` (a duration),
``service_level_below`` (0..1) and ``eligible_agents_at_most`` (a count), as the live rules
file does; it then applies only while each condition holds, measured as the live service
measures it (``simulations.queue_state``, ``router.queue_signals``). Steps are checked in order
with every step applied, so whichever queue conditions hold, a step only lowers. Coverage
counts them where they could hold when nobody can take the stream otherwise (no eligible
agent, service level down; not the expected wait, unknown then).

Bots are declared like agents, with ``kind: bot``: no capacity limit (capacity > 0 only
says which channels the bot serves), skills and shifts as for people, never staff. A contact
of a bot-first rule goes at arrival to a bot that holds the rule's requirements on its
channel (``router.assign.pick_bot``); when none can take it (no bot declared, off duty,
wrong channel or skills), people may take it, as in the live service (``router.policy``).
An escalated contact joins the people's queue with its original arrival time and priority:
its wait for a person counts from its arrival (the bot's time included) and its patience
starts when it joins the queue. Bots ignore agent groups, as live: a bot-first rule naming
``agent_groups`` still goes to any bot holding its skills; the groups choose among people.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import yaml

from router.domain import (
    MAX_PRIORITY,
    MAX_PROFICIENCY,
    MIN_PROFICIENCY,
    AgentId,
    AgentKind,
    Channel,
    QueueSignals,
)
from router.errors import InvalidArgument
from router.rules import (
    LANGUAGE_SKILL_PREFIX,
    RelaxationStep,
    Requirements,
    Rule,
    RuleBook,
    Weights,
    check_name,
    validate_rule,
)
from router.scoring import has_skills
from simulations.models import (
    NEVER,
    Break,
    Distribution,
    Empirical,
    Exponential,
    Fixed,
    Lognormal,
    Shift,
    Stream,
    merge_periods,
)
from simulations.plan import POLICY_WEIGHTS, AgentSpec, BotModel, History, Journeys, Plan
from simulations.yamlfields import Field, ScenarioError, compose

MODES = ("simulate", "headline")
_TOP = {
    "name",
    "description",
    "mode",
    "seed",
    "replications",
    "horizon",
    "interval",
    "warmup",
    "policy",
    "weights",
    "history",
    "target_service_level",
    "streams",
    "rules",
    "agents",
    "journeys",
}
_CHANNELS = tuple(ch.value for ch in Channel)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A checked scenario: the plan to run and how to run it."""

    name: str
    description: str
    mode: str
    seed: int
    replications: int
    target_service_level: float
    plan: Plan
    source: str


def load_scenario(path: Path) -> Scenario:
    """Read and check a scenario file; ScenarioError names the line and field at fault."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(str(path), 0, "(file)", f"cannot read: {exc.strerror}") from exc
    return parse_scenario(text, str(path))


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Check a scenario given as YAML text."""
    top = compose(text, source).mapping(_TOP, {"name", "streams", "agents", "horizon"})
    horizon = top["horizon"].duration(positive=True)
    interval = top["interval"].duration(positive=True) if "interval" in top else 900.0
    policy = top["policy"].choice(tuple(POLICY_WEIGHTS)) if "policy" in top else "rules"
    weights = _weights(top["weights"]) if "weights" in top else POLICY_WEIGHTS[policy]
    streams = tuple(_stream(f, interval, horizon) for f in top["streams"].sequence(True))
    ruled = [_rule(f) for f in top["rules"].sequence()] if "rules" in top else []
    everyone = [a for f in top["agents"].sequence(True) for a in _agents(f, horizon)]
    plan = Plan(
        agents=tuple(a for a in everyone if a.kind is AgentKind.HUMAN),
        bots=tuple(a for a in everyone if a.kind is AgentKind.BOT),
        rules=RuleBook(r.rule for r in ruled),
        bot_models={r.rule.issue: r.bot for r in ruled if r.bot is not None},
        horizon_s=horizon,
        interval_s=interval,
        streams=streams,
        warmup_s=top["warmup"].duration() if "warmup" in top else 0.0,
        journeys=_journeys(top["journeys"]) if "journeys" in top else Journeys(),
        history=History(top["history"].choice(tuple(h.value for h in History)))
        if "history" in top
        else History.SHARED,
        weights=weights,
        name=top["name"].text(),
    )
    _check_groups(plan, ruled)
    _check_coverage(plan, top)
    return Scenario(
        name=plan.name,
        description=str(top["description"].scalar() or "") if "description" in top else "",
        mode=top["mode"].choice(MODES) if "mode" in top else "simulate",
        seed=top["seed"].integer(0, 2**31) if "seed" in top else 1,
        replications=top["replications"].integer(1, 1000) if "replications" in top else 5,
        target_service_level=top["target_service_level"].number(0.01, 1.0)
        if "target_service_level" in top
        else 0.8,
        plan=plan,
        source=source,
    )


def _name(field: Field) -> str:
    try:
        return check_name(field.path, field.text())
    except InvalidArgument as exc:
        raise field.error(exc.problem) from exc


def _channel(field: Field) -> Channel:
    return Channel(field.choice(_CHANNELS))


def distribution(field: Field) -> Distribution:
    """A duration model: {dist: exponential|lognormal|empirical|fixed, mean, sd, values}."""
    if field.is_scalar() and field.scalar() == "never":
        return NEVER
    spec = field.mapping({"dist", "mean", "sd", "values"}, {"dist"})
    kind = spec["dist"].choice(("exponential", "lognormal", "empirical", "fixed"))
    if kind == "empirical":
        if "values" not in spec:
            raise field.error("an empirical distribution needs 'values' (a list of durations)")
        values = tuple(v.duration() for v in spec["values"].sequence(True))
        if not any(values):
            raise spec["values"].error("needs at least one positive duration")
        return Empirical(values)
    if "mean" not in spec:
        raise field.error(f"a {kind} distribution needs 'mean'")
    mean = spec["mean"].duration(positive=True)
    if kind == "exponential":
        return Exponential(mean)
    if kind == "fixed":
        return Fixed(mean)
    if "sd" not in spec:
        raise field.error("a lognormal distribution needs 'sd' (standard deviation)")
    return Lognormal(mean, spec["sd"].duration(positive=True))


def _stream(field: Field, interval_s: float, horizon_s: float) -> Stream:
    spec = field.mapping(
        {"issue", "channel", "per_hour", "handle", "patience", "priority", "language"},
        {"issue", "channel", "per_hour", "handle"},
    )
    rates_field = spec["per_hour"]
    if rates_field.is_sequence():
        rates = tuple(r.number(0.0, 1e7) / 3600.0 for r in rates_field.sequence(True))
        if len(rates) > math.ceil(horizon_s / interval_s):
            raise rates_field.error(
                f"{len(rates)} rates for a horizon of {math.ceil(horizon_s / interval_s)} intervals"
            )
    else:
        rates = (rates_field.number(0.0, 1e7) / 3600.0,)
    return Stream(
        issue=_name(spec["issue"]),
        channel=_channel(spec["channel"]),
        rates_per_s=rates,
        interval_s=interval_s if len(rates) > 1 else horizon_s,
        handle=distribution(spec["handle"]),
        patience=distribution(spec["patience"]) if "patience" in spec else NEVER,
        priority=spec["priority"].integer(0, MAX_PRIORITY) if "priority" in spec else 0,
        language=_name(spec["language"]) if "language" in spec else "",
    )


def _levels(field: Field, allow_zero: bool = False) -> dict[str, int]:
    levels = {}
    for skill, value in field.items():
        try:
            check_name(value.path, skill)
        except InvalidArgument as exc:
            raise value.error(exc.problem) from exc
        levels[skill] = value.integer(0 if allow_zero else 1, MAX_PROFICIENCY)
    return levels


def _groups(field: Field, named: list[Field]) -> frozenset[str]:
    """A non-empty list of agent group names; each name's field is added to `named` (the
    scenario checks that some agent belongs to it)."""
    groups: set[str] = set()
    for item in field.sequence(True):
        name = _name(item)
        if name in groups:
            raise item.error(f"group {name!r} given twice")
        groups.add(name)
        named.append(item)
    return frozenset(groups)


_STEP_FIELDS = {
    "after",
    "skills",
    "add_agent_groups",
    "expected_wait_over",
    "service_level_below",
    "eligible_agents_at_most",
}


def _step(field: Field, named: list[Field]) -> RelaxationStep:
    """A step as the live rules file writes it (``router.admin_specs``): `after`, what it
    changes, and the queue conditions it may also wait for (checked by the core)."""
    spec = field.mapping(_STEP_FIELDS, {"after"})
    return RelaxationStep(
        after_s=spec["after"].duration(),
        min_proficiency=_levels(spec["skills"], True) if "skills" in spec else {},
        add_groups=_groups(spec["add_agent_groups"], named)
        if "add_agent_groups" in spec
        else frozenset(),
        expected_wait_over_s=spec["expected_wait_over"].duration()
        if "expected_wait_over" in spec
        else None,
        service_level_below=spec["service_level_below"].number(0.0, 1.0)
        if "service_level_below" in spec
        else None,
        eligible_at_most=spec["eligible_agents_at_most"].integer(0, 100_000)
        if "eligible_agents_at_most" in spec
        else None,
    )


class _Ruled(NamedTuple):
    """A checked rule, its bot model, and the fields of the agent groups it names."""

    rule: Rule
    bot: BotModel | None
    groups: list[Field]


def _rule(field: Field) -> _Ruled:
    spec = field.mapping(
        {
            "issue",
            "skills",
            "service_level",
            "targets",
            "steps",
            "weights",
            "description",
            "bot_first",
            "bot",
            "agent_groups",
        },
        {"issue", "skills"},
    )
    named: list[Field] = []
    agent_groups = _groups(spec["agent_groups"], named) if "agent_groups" in spec else frozenset()
    steps = tuple(_step(f, named) for f in spec["steps"].sequence()) if "steps" in spec else ()
    targets = (
        {
            Channel(ch): t.duration(positive=True)
            for ch, t in spec["targets"].items()
            if _channel_key(t, ch)
        }
        if "targets" in spec
        else {}
    )
    rule = Rule(
        issue=_name(spec["issue"]),
        skills=MappingProxyType(_levels(spec["skills"])),
        service_level=spec["service_level"].number(0.01, 1.0) if "service_level" in spec else 0.8,
        answer_target_s=MappingProxyType(targets),
        steps=steps,
        weights=_weights(spec["weights"]) if "weights" in spec else Weights(),
        bot_first=spec["bot_first"].boolean() if "bot_first" in spec else False,
        agent_groups=agent_groups,
    )
    try:
        validate_rule(rule)
    except InvalidArgument as exc:  # the core names the field; we add its line
        raise _core_field(field, spec, exc.field).error(exc.problem) from exc
    _check_relaxes(rule, spec)
    return _Ruled(rule, _bot_model(rule, spec), named)


def _bot_model(rule: Rule, spec: dict[str, Field]) -> BotModel | None:
    """The bot outcome of a bot-first rule: required with ``bot_first: true``, refused
    without (a model no contact would use is a mistake in the file)."""
    if not rule.bot_first:
        if "bot" in spec:
            raise spec["bot"].error("only a rule with 'bot_first: true' sends contacts to a bot")
        return None
    if "bot" not in spec:
        raise spec["bot_first"].error(
            "a bot-first rule needs 'bot': {containment: share the bot resolves (0..1), "
            "handle: the bot's handling time}"
        )
    bot = spec["bot"].mapping({"containment", "handle"}, {"containment", "handle"})
    handle = distribution(bot["handle"])
    if handle is NEVER:
        raise bot["handle"].error("a bot must finish: give a distribution, not 'never'")
    return BotModel(handle=handle, containment=bot["containment"].number(0.0, 1.0))


def _check_relaxes(rule: Rule, spec: dict[str, Field]) -> None:
    """Steps may only lower or drop requirements: the engine relies on a longer wait never
    making an agent ineligible (the core's rule check does not enforce it yet). Adding
    agent groups only widens, so a step may always do that.

    Checked along every step in order, queue-state steps included: then any set of steps
    in force (the time-only ones, plus whichever queue conditions hold at the moment)
    requires no more than a subset of it, so a queue-state step that holds only ever
    widens, and one that stops holding only narrows back to the time-only requirements."""
    required = dict(rule.skills)
    for i, step in enumerate(rule.steps):
        for skill, level in step.min_proficiency.items():
            if level > required.get(skill, 0):
                where = spec["steps"].sequence()[i]
                raise where.error(
                    f"skills.{skill}: a relaxation step may only lower or drop a requirement "
                    f"(level {level} after {required.get(skill, 0)})"
                )
            if level == 0:
                required.pop(skill, None)
            else:
                required[skill] = level


def _core_field(rule_field: Field, spec: dict[str, Field], core_path: str) -> Field:
    """The scenario value a core error path (``rule.steps[1].after``) points at."""
    match = re.match(r"rule\.(\w+)(?:\[(\d+)\])?", core_path)
    name = {"answer_targets": "targets"}.get(match.group(1), match.group(1)) if match else ""
    where = spec.get(name, rule_field)
    if match and match.group(2) is not None and where.is_sequence():
        items = where.sequence()
        index = int(match.group(2))
        where = items[index] if index < len(items) else where
    rest = core_path[match.end() :] if match else ""
    key = re.match(r"\.(\w+)$", rest)  # a step's own field (steps[0].add_agent_groups)
    if key and isinstance(where.node, yaml.MappingNode):
        for key_node, value_node in where.node.value:
            if key_node.value == key.group(1):
                return Field(value_node, where.path + rest, where.source)
    return Field(where.node, where.path + rest if match else rule_field.path, where.source)


def _channel_key(value: Field, key: str) -> bool:
    if key not in _CHANNELS:
        raise value.error(f"unknown channel {key!r} (expected one of: {', '.join(_CHANNELS)})")
    return True


def _weights(field: Field) -> Weights:
    names = {"proficiency", "idle", "occupancy", "affinity", "idle_horizon"}
    spec = field.mapping(names)
    base = Weights()
    values = {k: spec[k].number(0.0, 100.0) for k in names - {"idle_horizon"} if k in spec}
    if "idle_horizon" in spec:
        values["idle_horizon_s"] = spec["idle_horizon"].duration(positive=True)
    return replace(base, **values)


def _agents(field: Field, horizon_s: float) -> list[AgentSpec]:
    spec = field.mapping(
        {"group", "kind", "count", "skills", "capacity", "exclusive_channels", "shifts"},
        {"group", "skills", "capacity"},
    )
    group = _name(spec["group"])
    kind = (
        AgentKind(spec["kind"].choice(tuple(k.value for k in AgentKind)))
        if "kind" in spec
        else AgentKind.HUMAN
    )
    if kind is AgentKind.HUMAN and "count" not in spec:
        raise field.error("missing field 'count'")
    if kind is AgentKind.BOT and "exclusive_channels" in spec:
        raise spec["exclusive_channels"].error("a bot has no capacity limit to share")
    capacity = {}
    for ch, value in spec["capacity"].items():
        _channel_key(value, ch)
        capacity[Channel(ch)] = value.integer(0, 100)
    if not any(capacity.values()):
        raise spec["capacity"].error("the group can take no contact on any channel")
    periods: list[tuple[float, float]] = []
    for shift_field in spec["shifts"].sequence(True) if "shifts" in spec else []:
        s = shift_field.mapping({"start", "end", "breaks"}, {"start", "end"})
        start, end = s["start"].duration(), s["end"].duration()
        if end <= start:
            raise s["end"].error("a shift must end after it starts")
        breaks = (
            tuple(
                Break(b["at"].duration(), b["length"].duration(positive=True))
                for b in (
                    x.mapping({"at", "length"}, {"at", "length"}) for x in s["breaks"].sequence()
                )
            )
            if "breaks" in s
            else ()
        )
        periods += Shift(start, end, breaks).on_duty()
    duty = tuple(merge_periods(periods)) if "shifts" in spec else ((0.0, math.inf),)
    skills = MappingProxyType(_levels(spec["skills"]))
    count = spec["count"].integer(0, 100_000) if "count" in spec else 1
    exclusive = spec["exclusive_channels"].boolean() if "exclusive_channels" in spec else False
    return [
        AgentSpec(
            AgentId(f"{group}-{k:04d}"),
            group,
            skills,
            MappingProxyType(capacity),
            duty,
            exclusive,
            kind,
        )
        for k in range(count)
    ]


def _journeys(field: Field) -> Journeys:
    spec = field.mapping(
        {
            "base",
            "per_level",
            "with_history",
            "same_agent",
            "return_delay",
            "switch_channel",
            "switch_to",
            "abandon_retry",
            "max_contacts",
        }
    )

    def share(key: str, default: float) -> float:
        return spec[key].number(0.0, 1.0) if key in spec else default

    switch_to = {}
    if "switch_to" in spec:
        for ch, weight in spec["switch_to"].items():
            _channel_key(weight, ch)
            switch_to[Channel(ch)] = weight.number(0.0, 1e6)
    journeys = Journeys(
        base=share("base", 1.0),
        per_level=share("per_level", 0.0),
        with_history=share("with_history", 0.0),
        same_agent=share("same_agent", 0.0),
        switch_channel=share("switch_channel", 0.0),
        switch_to=switch_to,
        abandon_retry=share("abandon_retry", 0.0),
        max_contacts=spec["max_contacts"].integer(1, 100) if "max_contacts" in spec else 4,
    )
    if "return_delay" in spec:
        journeys = replace(journeys, return_delay=distribution(spec["return_delay"]))
    return journeys


def _check_groups(plan: Plan, ruled: list[_Ruled]) -> None:
    """Every agent group a rule or step names has a person in it: the scenario declares the
    whole floor, so an unknown name is a mistake that would silently route nothing to it.
    A bot's group does not count: bots ignore agent groups (``router.assign.pick_bot``)."""
    known = {a.group for a in plan.agents}
    bots = {b.group for b in plan.bots} - known
    for entry in ruled:
        for item in entry.groups:
            name = item.text()
            if name not in known:
                why = " (a bot's: bots ignore agent groups)" if name in bots else ""
                raise item.error(
                    f"no agent is in group {name!r}{why}; groups: {', '.join(sorted(known))}"
                )


#: Queue signals under which every queue-state step could hold, but for the expected wait:
#: when nobody can take a stream under its waiting-time steps, the live measure finds no
#: eligible slot and the expected wait is unknown (``router.estimate``), so a step waiting
#: for it never applies.
_NOBODY_SERVES = QueueSignals(expected_wait_s=None, service_level=0.0, eligible_agents=0)


def _check_coverage(plan: Plan, top: dict[str, Field]) -> None:
    """Every stream must be servable by some agent group, or the scenario is a mistake:
    with every waiting-time step applied, or failing that, with the queue-state steps
    that could then hold (no eligible agent, service level down; see `_NOBODY_SERVES`) --
    e.g. ``{after: 0, eligible_agents_at_most: 0, skills: {billing: 1}}`` as the fallback
    for a level nobody on the floor holds."""
    for k, stream in enumerate(plan.streams):
        rule = plan.rule(stream.issue)
        required = rule.required_at(math.inf)  # skills and groups, every time step applied
        if not _servable(plan, rule, stream, required) and not _servable(
            plan, rule, stream, rule.required_at(math.inf, _NOBODY_SERVES)
        ):
            field = top["streams"].sequence()[k]
            groups = f", in group {' or '.join(sorted(required.groups))}" if required.groups else ""
            waits = any(step.expected_wait_over_s is not None for step in rule.steps)
            hint = "; a step on expected_wait_over never applies then: nobody to wait for"
            raise field.error(
                f"no agent group can take {stream.issue!r} on {stream.channel} "
                f"(needs {dict(required)}{groups} and {stream.channel} capacity"
                f"{hint if waits else ''})"
            )


def _servable(plan: Plan, rule: Rule, stream: Stream, required: Requirements) -> bool:
    """Does some person with capacity on the stream's channel meet `required`? Adds the
    stream's language to `required` when the rule asks for it."""
    if stream.language and rule.require_language:
        required.setdefault(LANGUAGE_SKILL_PREFIX + stream.language, MIN_PROFICIENCY)
    return any(
        a.capacity.get(stream.channel, 0) > 0 and has_skills(a.agent(), required)
        for a in plan.agents
    )
