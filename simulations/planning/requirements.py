"""Agents needed per interval and skill group: Erlang A (when patience is known) or Erlang C.

A skill group pools the contacts of its issues; an interval's handle time is the
contact-weighted mean of its issues', and its patience the contact-weighted mean abandonment
rate's inverse. The answer is grossed up for shrinkage (off-phone time not modelled as breaks:
training, absence) and capped by maximum occupancy, both through ``simulations.erlang.staff``.

These are single-skill figures. Where agents hold several skills the covering model counts
each agent once (see ``shifts``), which forgoes the pooling gain; the simulation in the loop
(``loop``) then checks the multi-skill schedule with the live routing and raises the
requirement wherever it falls short, so multi-skill requirements are settled by simulation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from router.errors import InvalidArgument
from simulations.erlang import staff
from simulations.planning.forecast import Forecast
from simulations.planning.model import DAY_S, PlanRequest

IntArray = NDArray[np.int64]
#: An interval expecting fewer contacts than this is treated as closed (no one needed).
MIN_CONTACTS = 0.05


@dataclass(frozen=True)
class Requirements:
    """Agents to schedule per interval for each skill group (shrinkage included)."""

    interval_s: int
    agents: Mapping[str, IntArray]  # group -> per interval
    contacts: Mapping[str, NDArray[np.float64]]  # group -> expected contacts per interval

    @property
    def groups(self) -> tuple[str, ...]:
        """Skill groups, in plan order."""
        return tuple(self.agents)

    @property
    def intervals(self) -> int:
        """Intervals covered."""
        return len(next(iter(self.agents.values())))

    def raised(self, additions: Mapping[tuple[str, int], int]) -> Requirements:
        """A copy with `additions[(group, interval)]` more agents in those intervals."""
        agents = {g: a.copy() for g, a in self.agents.items()}
        for (group, index), extra in additions.items():
            agents[group][index] += extra
        return Requirements(self.interval_s, agents, self.contacts)

    def total(self) -> IntArray:
        """Agents needed per interval over all groups."""
        return np.asarray(np.sum(list(self.agents.values()), axis=0), dtype=np.int64)


def _open(request: PlanRequest, index: int) -> bool:
    if request.opening is None:
        return True
    start_s = index * request.interval_s % DAY_S
    open_s, close_s = request.opening
    return open_s <= start_s < close_s


def compute_requirements(request: PlanRequest, forecast: Forecast) -> Requirements:
    """Erlang staffing of every interval and skill group of the plan."""
    for issue, _ in forecast.volumes:
        if request.group_of(issue) is None:
            known = [i for g in request.groups for i in g.issues]
            raise InvalidArgument(
                "groups",
                f"issue {issue!r} of the demand is served by no skill group (issues: {known})",
            )
    target = request.target
    cache: dict[tuple[float, float, float | None, float], int] = {}
    agents: dict[str, IntArray] = {}
    contacts: dict[str, NDArray[np.float64]] = {}
    n = forecast.days * DAY_S // forecast.interval_s
    for group in request.groups:
        cells = [(i, v) for (i, _), v in forecast.volumes.items() if i in group.issues]
        volume = np.sum([v for _, v in cells], axis=0) if cells else np.zeros(n)
        need = np.zeros(n, dtype=np.int64)
        answer_s = request.answer_targets.get(group.name, target.answer_within_s)
        for k in range(n):
            if volume[k] < MIN_CONTACTS or not _open(request, k):
                continue
            aht = sum(v[k] * forecast.aht_s[i] for i, v in cells) / volume[k]
            patience = _patience(cells, k, forecast.patience_s, target.patience_s)
            rate_h = round(volume[k] * 3600.0 / forecast.interval_s, 2)
            key = (
                rate_h,
                round(aht, 1),
                None if patience is None else round(patience, 1),
                answer_s,
            )
            if key not in cache:
                cache[key] = staff(
                    rate_h / 3600.0,
                    key[1],
                    answer_s,
                    target.service_level,
                    patience_s=key[2],
                    max_occupancy=target.max_occupancy,
                    shrinkage=target.shrinkage,
                ).agents_scheduled
            need[k] = cache[key]
        agents[group.name] = need
        contacts[group.name] = np.asarray(volume, dtype=np.float64)
    return Requirements(forecast.interval_s, agents, contacts)


def _patience(
    cells: list[tuple[str, NDArray[np.float64]]],
    k: int,
    patience_s: Mapping[str, float | None],
    default_s: float | None,
) -> float | None:
    """Mean patience of an interval's mix: the inverse of the weighted abandonment rate; None
    (Erlang C) when some issue's patience is unknown and no default is given."""
    weight = rate = 0.0
    for issue, volume in cells:
        p = patience_s.get(issue) or default_s
        if volume[k] <= 0:
            continue
        if p is None or not math.isfinite(p):
            return None
        weight += volume[k]
        rate += volume[k] / p
    return weight / rate if rate > 0 else None
