"""The headline experiment: the same agents and customers as channel silos and as Omniroute.

Silos: each agent serves one channel (each group split across its channels in proportion to
the channels' workload), agents see only their own channel's history. Omniroute: one queue,
any agent any channel (one channel at a time when the plan says `exclusive_channels`), full
cross-channel history. Both runs use the same seeds, hence the same first contacts with the
same handle times and patience (common random numbers), so differences are the design's.

"Agents needed" is the smallest head count meeting the target service level on every
channel over the day, found by bisection on simulated replications: for Omniroute all
groups scale together; for silos each channel's team is sized on its own with the other
teams as planned (repeats couple the channels a little; that is ignored).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.table import Table

from router.domain import AgentId, Channel
from router.rules import Rule, RuleBook
from simulations.plan import AgentSpec, History, Plan
from simulations.results import Estimate, Replications, replicate
from simulations.scenario import Scenario
from simulations.tables import count, pct, secs

#: Replications per evaluation in the agents-needed search (the study itself uses more).
SEARCH_REPLICATIONS = 3


def workload(plan: Plan) -> dict[Channel, float]:
    """Agents' worth of work per channel: Erlangs over the concurrency agents allow."""
    out: dict[Channel, float] = {}
    for stream in plan.streams:
        mean_rate = sum(stream.rates_per_s) / len(stream.rates_per_s)
        out[stream.channel] = out.get(stream.channel, 0.0) + mean_rate * stream.handle.mean_s
    for channel in out:
        caps = [a.capacity.get(channel, 0) for a in plan.agents if a.capacity.get(channel, 0)]
        out[channel] /= (sum(caps) / len(caps)) if caps else 1.0
    return out


def _split(count: int, shares: Mapping[Channel, float]) -> dict[Channel, int]:
    """`count` agents over channels by share, largest remainder first (sums to `count`)."""
    total = sum(shares.values()) or 1.0
    exact = {ch: count * w / total for ch, w in shares.items()}
    out = {ch: math.floor(x) for ch, x in exact.items()}
    for ch in sorted(exact, key=lambda c: exact[c] - out[c], reverse=True)[
        : count - sum(out.values())
    ]:
        out[ch] += 1
    return out


def silo_plan(plan: Plan) -> Plan:
    """The same agents split into one team per channel, with per-channel history only."""
    load = workload(plan)
    agents: list[AgentSpec] = []
    teams: dict[str, set[str]] = {}  # agent group -> its channel teams
    for group in plan.groups():
        members = [a for a in plan.agents if a.group == group]
        channels = {ch: load.get(ch, 0.0) for ch, n in members[0].capacity.items() if n > 0}
        split = _split(len(members), channels)
        it = iter(members)
        for channel, n in split.items():
            for _ in range(n):
                agent = next(it)
                teams.setdefault(group, set()).add(f"{group}@{channel}")
                agents.append(
                    replace(
                        agent,
                        group=f"{group}@{channel}",
                        capacity={channel: agent.capacity[channel]},
                    )
                )
    return replace(
        plan,
        agents=tuple(agents),
        rules=RuleBook(_silo_rule(rule, teams) for rule in plan.rules),
        history=History.PER_CHANNEL,
        name=f"{plan.name} (silos)",
    )


def _silo_rule(rule: Rule, teams: Mapping[str, set[str]]) -> Rule:
    """`rule` with each agent group it names standing for the channel teams split from it
    (``group@channel``), so the silos route to the same people."""
    if not rule.agent_groups:
        return rule

    def widen(groups: frozenset[str]) -> frozenset[str]:
        return frozenset(g for group in groups for g in teams.get(group, {group}))

    steps = tuple(replace(step, add_groups=widen(step.add_groups)) for step in rule.steps)
    return replace(rule, agent_groups=widen(rule.agent_groups), steps=steps)


def resized(plan: Plan, counts: Mapping[str, int]) -> Plan:
    """`plan` with `counts[group]` agents in each group (clones of its first member)."""
    agents: list[AgentSpec] = []
    for group in plan.groups():
        members = [a for a in plan.agents if a.group == group]
        for k in range(counts.get(group, len(members))):
            base = members[k] if k < len(members) else members[0]
            agents.append(replace(base, id=AgentId(f"{group}-x{k:04d}")))
    return replace(plan, agents=tuple(agents))


def _meets(plan: Plan, seed: int, target: float, channels: tuple[Channel, ...]) -> bool:
    reps = replicate(plan, SEARCH_REPLICATIONS, seed)
    return all(
        reps.by_channel(ch, "service_level").mean >= target
        for ch in channels
        if ch in reps.runs[0].channels
    )


def _smallest(meets: Callable[[int], bool], start: int) -> int:
    """Fewest n with meets(n), assuming monotone: doubling from `start`, then bisection."""
    high = max(1, start)
    while not meets(high):
        high *= 2
        if high > 16 * max(1, start):
            return high
    low = 0
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if meets(middle) else (middle, high)
    return high


def needed_omni(plan: Plan, seed: int, target: float) -> int:
    """Fewest agents (all groups scaled together) meeting the target on every channel."""
    sizes = {g: sum(1 for a in plan.agents if a.group == g) for g in plan.groups()}
    total = sum(sizes.values())

    def counts(n: int) -> dict[str, int]:
        return {g: round(n * size / total) for g, size in sizes.items()}

    return sum(
        counts(
            _smallest(
                lambda n: _meets(resized(plan, counts(n)), seed, target, plan.channels()), total
            )
        ).values()
    )


def needed_silos(plan: Plan, seed: int, target: float) -> int:
    """Fewest agents when each channel's team is sized to meet its own target."""
    sizes = {g: sum(1 for a in plan.agents if a.group == g) for g in plan.groups()}
    needed = 0
    for channel in plan.channels():
        team = {g: n for g, n in sizes.items() if g.endswith(f"@{channel}")}
        base = sum(team.values())
        if not base:
            continue

        def counts(n: int, team: dict[str, int] = team, base: int = base) -> dict[str, int]:
            return {**sizes, **{g: round(n * size / base) for g, size in team.items()}}

        n = _smallest(
            lambda n, c=channel, k=counts: _meets(  # type: ignore[misc]
                resized(plan, k(n)), seed, target, (c,)
            ),
            base,
        )
        needed += sum(counts(n)[g] for g in team)
    return needed


@dataclass(frozen=True, slots=True)
class HeadlineResult:
    """Both designs, side by side."""

    scenario: Scenario
    silos: Replications
    omni: Replications
    needed_silos: int | None
    needed_omni: int | None

    def rows(self) -> list[tuple[str, Estimate, Estimate, str]]:
        """(measure, silos, omni, kind) for the table and the plot."""
        out: list[tuple[str, Estimate, Estimate, str]] = []
        for ch in self.omni.runs[0].channels:
            out.append(
                (
                    f"service level {ch}",
                    self.silos.by_channel(ch, "service_level"),
                    self.omni.by_channel(ch, "service_level"),
                    "pct",
                )
            )
        for ch in self.omni.runs[0].channels:
            out.append(
                (
                    f"ASA {ch}",
                    self.silos.by_channel(ch, "asa_s"),
                    self.omni.by_channel(ch, "asa_s"),
                    "secs",
                )
            )
        for label, measure, kind in (
            ("abandoned", "abandon_rate", "pct"),
            ("repeat contacts", "repeats", "count"),
            ("channel switches", "switches", "count"),
        ):
            out.append((label, self.silos.total(measure), self.omni.total(measure), kind))
        out.append(
            (
                "first-contact resolution",
                self.silos.extra("first_contact_resolution"),
                self.omni.extra("first_contact_resolution"),
                "pct",
            )
        )
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures with 95% half-widths."""
        return {
            "scenario": self.scenario.name,
            "replications": self.scenario.replications,
            "agents_planned": len(self.scenario.plan.agents),
            "agents_needed": {"silos": self.needed_silos, "omnichannel": self.needed_omni},
            "measures": {
                label: {"silos": [s.mean, s.half_width], "omnichannel": [o.mean, o.half_width]}
                for label, s, o, _ in self.rows()
            },
        }


def run_headline(
    scenario: Scenario, progress: Callable[[float], None] | None = None, search: bool = True
) -> HeadlineResult:
    """Run both designs (and, with `search`, the agents-needed search for each)."""
    omni_plan = replace(scenario.plan, history=History.SHARED)
    silos = silo_plan(omni_plan)
    n, seed, target = scenario.replications, scenario.seed, scenario.target_service_level

    def part(low: float, high: float) -> Callable[[float], None] | None:
        return None if progress is None else (lambda done: progress(low + (high - low) * done))

    silo_reps = replicate(silos, n, seed, part(0.0, 0.2))
    omni_reps = replicate(omni_plan, n, seed, part(0.2, 0.4))
    need_silos = need_omni = None
    if search:
        need_silos = needed_silos(silos, seed, target)
        if progress is not None:
            progress(0.7)
        need_omni = needed_omni(omni_plan, seed, target)
    if progress is not None:
        progress(1.0)
    return HeadlineResult(scenario, silo_reps, omni_reps, need_silos, need_omni)


def headline_tables(result: HeadlineResult) -> list[Table]:
    """Silos and Omniroute side by side."""
    fmt = {"pct": pct, "secs": secs, "count": count}
    table = Table(
        title=f"{result.scenario.name}: channel silos vs Omniroute "
        f"({result.scenario.replications} replications, ± = 95% CI)",
        title_justify="left",
    )
    for column in ("measure", "channel silos", "Omniroute"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    planned = str(len(result.scenario.plan.agents))
    table.add_row("agents on the plan", planned, planned)
    if result.needed_silos is not None:
        table.add_row(
            f"agents needed for {result.scenario.target_service_level:.0%} on every channel",
            str(result.needed_silos),
            str(result.needed_omni),
        )
    for label, silo, omni, kind in result.rows():
        table.add_row(label, fmt[kind](silo), fmt[kind](omni))
    return [table]


def write_headline_plot(result: HeadlineResult, path: Path) -> None:
    """An HTML page with the side-by-side plot and the stated assumptions."""
    from simulations.report import write_headline_report

    write_headline_report(result, path)
