"""Simulation in the loop: run the schedule through the simulator with the live routing policy,
raise the requirement where an interval misses its target, solve again.

The adapter (`simulation_plan`) turns a roster into a ``simulations.plan.Plan``: one stream per
issue and channel with the forecast's rate in every interval, handle times resampled from the
log (else exponential with the forecast's mean), exponential patience, one rule per issue
needing its own skill, and every rostered agent on duty during their shifts less their breaks
(in whole-week plans the last night wraps onto day 0). Shrinkage drops that share of shifts at
random (seeded), as absence would.

An interval of a skill group *misses* when its service level, pooled over the replications,
falls short of the target by more than 1.645 binomial standard errors at the target (a
one-sided 95% test): a quiet interval with a handful of contacts does not drive the plan by
noise alone.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import structlog
from numpy.typing import NDArray

from router.domain import AgentId, Channel
from router.rules import Rule, RuleBook
from simulations.models import NEVER, Distribution, Empirical, Exponential, Stream, merge_periods
from simulations.plan import AgentSpec, Plan
from simulations.planning.forecast import Forecast
from simulations.planning.model import DAY_S, PlanRequest
from simulations.planning.requirements import Requirements
from simulations.planning.roster import Roster
from simulations.results import replicate

log = structlog.get_logger(__name__)
#: Skill level given to every agent for each issue of their groups.
LEVEL = 3
#: Standard errors below target that make a miss (one-sided 95%).
MISS_Z = 1.645


@dataclass(frozen=True)
class Check:
    """Simulated figures per skill group and interval, pooled over replications."""

    offered: dict[str, NDArray[np.float64]]  # mean contacts per replication
    service_level: dict[str, NDArray[np.float64]]  # NaN where nothing was offered
    misses: tuple[tuple[str, int], ...]  # (group, interval)
    contacts: int


def _issue_groups(request: PlanRequest) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for group in request.groups:
        for issue in group.issues:
            out.setdefault(issue, []).append(group.name)
    return out


def simulation_plan(request: PlanRequest, forecast: Forecast, roster: Roster, seed: int) -> Plan:
    """The roster and forecast as a simulator plan (module docstring)."""
    horizon = request.days * DAY_S
    streams, rules = [], []
    by_issue: dict[str, dict[Channel, float]] = {}
    for (issue, channel_name), volume in sorted(forecast.volumes.items()):
        channel = Channel(channel_name)
        group = request.group_of(issue)
        answer = request.answer_targets.get(group or "", request.target.answer_within_s)
        by_issue.setdefault(issue, {})[channel] = answer
        samples = forecast.handle_samples_s.get(issue)
        handle: Distribution = Empirical(samples) if samples else Exponential(forecast.aht_s[issue])
        patience_s = forecast.patience_s.get(issue) or request.target.patience_s
        streams.append(
            Stream(
                issue,
                channel,
                tuple(float(v) / forecast.interval_s for v in volume),
                float(forecast.interval_s),
                handle,
                Exponential(patience_s) if patience_s else NEVER,
            )
        )
    for issue, targets in by_issue.items():
        rules.append(
            Rule(
                issue=issue,
                skills=MappingProxyType({issue: 1}),
                answer_target_s=MappingProxyType(targets),
            )
        )
    channels = {ch for targets in by_issue.values() for ch in targets}
    rng = random.Random(f"{seed}:shrinkage")
    periods: dict[str, list[tuple[float, float]]] = {}
    skills: dict[str, frozenset[str]] = {}
    for a in roster.assignments:
        skills[a.agent_id] = a.skills
        if request.target.shrinkage and rng.random() < request.target.shrinkage:
            continue
        on, t = [], a.start_s
        for begin, end in a.breaks:
            on.append((t, begin))
            t = end
        on.append((t, a.end_s))
        for start, end in on:
            for piece in _wrap(start, end, horizon, request.cyclic):
                periods.setdefault(a.agent_id, []).append(piece)
    agents = []
    for agent_id in sorted(skills):
        issues = {i: LEVEL for g in request.groups if g.name in skills[agent_id] for i in g.issues}
        agents.append(
            AgentSpec(
                AgentId(agent_id),
                "+".join(sorted(skills[agent_id])),
                MappingProxyType(issues),
                MappingProxyType(dict.fromkeys(channels, 1)),
                tuple(merge_periods(periods.get(agent_id, []))),
            )
        )
    return Plan(
        agents=tuple(agents),
        rules=RuleBook(rules),
        horizon_s=float(horizon),
        interval_s=float(request.interval_s),
        streams=tuple(streams),
        name=request.name,
    )


def _wrap(start: float, end: float, horizon: float, cyclic: bool) -> list[tuple[float, float]]:
    if end <= horizon:
        return [(start, end)] if end > start else []
    if not cyclic:
        return [(start, horizon)] if start < horizon else []
    if start >= horizon:
        return [(start - horizon, end - horizon)]
    return [(start, horizon), (0.0, end - horizon)]


def check(
    request: PlanRequest,
    forecast: Forecast,
    roster: Roster,
    req: Requirements,
    progress: Callable[[float], None] | None = None,
) -> Check:
    """Simulate the roster; service level per group and interval, and the intervals missing."""
    settings = request.loop
    plan = simulation_plan(request, forecast, roster, settings.seed)
    reps = replicate(plan, settings.replications, settings.seed, progress)
    groups_of = _issue_groups(request)
    n = request.intervals
    offered = {g.name: np.zeros(n) for g in request.groups}
    answered = {g.name: np.zeros(n) for g in request.groups}
    for run in reps.runs:
        for (k, issue, _), figures in run.cells.items():
            if k >= n:
                continue
            for g in groups_of.get(issue, []):
                offered[g][k] += figures.for_people  # bots' contained contacts aside
                if figures.for_people:
                    answered[g][k] += figures.service_level * figures.for_people
    target = request.target.service_level
    misses, levels = [], {}
    for g in offered:
        level = np.divide(answered[g], offered[g], out=np.full(n, np.nan), where=offered[g] > 0)
        levels[g] = level
        for k in range(n):
            if req.agents[g][k] == 0 or offered[g][k] == 0:
                continue
            error = MISS_Z * math.sqrt(target * (1 - target) / offered[g][k])
            if level[k] < target - error:
                misses.append((g, k))
    runs = len(reps.runs)
    log.info("schedule_simulated", contacts=reps.contacts, misses=len(misses))
    return Check({g: v / runs for g, v in offered.items()}, levels, tuple(misses), reps.contacts)
