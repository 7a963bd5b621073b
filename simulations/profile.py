"""What a contact log says about the workload: arrivals per interval, handle times, patience,
the agents' skills and when they were on duty. Pure: contacts in, a frozen `Profile` out.

Patience is only partly seen in a log: a contact that abandoned shows its patience, one that
was served shows only that its patience exceeded its wait. So served waits are *censored*
observations: the Kaplan–Meier estimator uses both, and so does the exponential MLE
(rate = abandonments / total time spent waiting, Brown et al. 2005). Phantom contacts (they
vanished without a known cause) inform neither and are left out of patience.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from router.errors import InvalidArgument

if TYPE_CHECKING:
    from simulations.history import LoggedContact

_DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class HandleFit:
    """Handle times of one issue: a lognormal fit (of the positive times) and the sample."""

    count: int
    mean_s: float
    mu: float  # mean of log(handle_s)
    sigma: float  # standard deviation of log(handle_s)
    samples_s: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class PatienceFit:
    """Patience of one issue, from abandonments with served waits as censored observations."""

    abandoned: int
    censored: int  # served contacts: patience exceeded their wait
    exposure_s: float  # total time spent waiting, by every contact counted
    rate_per_s: float  # exponential MLE: abandoned / exposure_s
    times_s: tuple[float, ...]  # Kaplan–Meier: distinct abandonment times...
    survival: tuple[float, ...]  # ...and P(patience > t) just after each

    @property
    def mean_s(self) -> float:
        """Mean patience of the exponential fit; infinite when nobody abandoned."""
        return 1.0 / self.rate_per_s if self.rate_per_s > 0 else math.inf

    @property
    def median_s(self) -> float | None:
        """Kaplan–Meier median, or None when survival never falls to one half."""
        for time_s, survival in zip(self.times_s, self.survival, strict=True):
            if survival <= 0.5:
                return time_s
        return None


@dataclass(frozen=True)
class Profile:
    """The workload of a log, as the planner and the simulator need it."""

    interval_s: int
    days: tuple[str, ...]  # every calendar day from the first arrival to the last
    arrivals: Mapping[tuple[str, int, str, int], int]  # (day, interval start s, issue, priority)
    arrivals_by_channel: Mapping[tuple[str, int, str], int]  # (day, interval start s, channel)
    arrival_rate_per_hour: Mapping[tuple[int, int, str], float]  # (weekday, interval, issue)
    handle: Mapping[str, HandleFit]
    patience: Mapping[str, PatienceFit]
    skills: Mapping[str, Mapping[str, int]]  # agent -> issue -> contacts served
    proficiency: Mapping[str, Mapping[str, int]]  # agent -> issue -> level 1..5
    on_duty: Mapping[str, tuple[tuple[float, float], ...]]  # agent -> (start, end) epoch s

    @property
    def issues(self) -> tuple[str, ...]:
        """Every issue seen, sorted."""
        return tuple(sorted({key[2] for key in self.arrivals}))


def _day(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).date().isoformat()


def fit_handle(samples_s: Sequence[float]) -> HandleFit:
    """Lognormal fit of handle times; zeros (in logs: instant hang-ups) stay in the sample only."""
    values = np.asarray(samples_s, dtype=float)
    positive = np.log(values[values > 0])
    mu = float(positive.mean()) if positive.size else 0.0
    sigma = float(positive.std()) if positive.size > 1 else 0.0
    mean_s = float(values.mean()) if values.size else 0.0
    return HandleFit(len(values), mean_s, mu, sigma, tuple(float(v) for v in values))


def fit_patience(waits_s: Sequence[float], abandoned: Sequence[bool]) -> PatienceFit:
    """Kaplan–Meier and exponential-MLE patience from waits, `abandoned` marking true events
    (the rest are censored). At a tied time, censored contacts count as still at risk."""
    waits = np.asarray(waits_s, dtype=float)
    events = np.asarray(abandoned, dtype=bool)
    times, deaths = np.unique(waits[events], return_counts=True)
    at_risk = waits.size - np.searchsorted(np.sort(waits), times, side="left")
    survival = np.cumprod(1.0 - deaths / at_risk) if times.size else np.array([])
    exposure_s = float(waits.sum())
    count = int(events.sum())
    return PatienceFit(
        abandoned=count,
        censored=int(waits.size - count),
        exposure_s=exposure_s,
        rate_per_s=count / exposure_s if exposure_s > 0 else 0.0,
        times_s=tuple(float(t) for t in times),
        survival=tuple(float(s) for s in survival),
    )


def proficiency_from_counts(served: Mapping[str, int]) -> dict[str, int]:
    """Level 1–5 per issue from an agent's share of work, relative to their main issue: the
    issue they served most is 5, one served a fifth as often or less is 1."""
    most = max(served.values(), default=0)
    return {issue: max(1, min(5, math.ceil(5 * n / most))) for issue, n in served.items() if n}


def duty_spans(
    services: Sequence[tuple[float, float]], interval_s: int, max_gap_s: float
) -> tuple[tuple[float, float], ...]:
    """On-duty spans: every interval in which the agent served, merged across gaps of at most
    `max_gap_s` (a break or a quiet spell does not end a shift)."""
    touched: set[int] = set()
    for start, end in services:
        first = math.floor(start / interval_s)
        last = math.floor(max(end - 1e-9, start) / interval_s)
        touched.update(range(first, last + 1))
    spans: list[tuple[float, float]] = []
    for index in sorted(touched):
        start, end = index * interval_s, (index + 1) * interval_s
        if spans and start - spans[-1][1] <= max_gap_s:
            spans[-1] = (spans[-1][0], float(end))
        else:
            spans.append((float(start), float(end)))
    return tuple(spans)


def derive_profile(
    contacts: Sequence[LoggedContact], interval_s: int = 900, max_duty_gap_s: float = 1800.0
) -> Profile:
    """Arrival counts and rates, handle and patience fits per issue, agents' skills and duty."""
    if interval_s <= 0 or _DAY_S % interval_s:
        raise InvalidArgument("interval_s", f"must divide a day evenly, got {interval_s}")
    arrivals: Counter[tuple[str, int, str, int]] = Counter()
    by_channel: Counter[tuple[str, int, str]] = Counter()
    handles: defaultdict[str, list[float]] = defaultdict(list)
    waits: defaultdict[str, list[tuple[float, bool]]] = defaultdict(list)
    skills: defaultdict[str, Counter[str]] = defaultdict(Counter)
    services: defaultdict[str, list[tuple[float, float]]] = defaultdict(list)
    for contact in contacts:
        day = _day(contact.arrived_at)
        slot = int(contact.arrived_at % _DAY_S // interval_s * interval_s)
        arrivals[(day, slot, contact.issue, contact.priority)] += 1
        by_channel[(day, slot, contact.channel)] += 1
        if contact.outcome != "phantom":
            waits[contact.issue].append((contact.wait_s, contact.outcome == "abandoned"))
        if contact.outcome == "served" and contact.handle_s is not None:
            handles[contact.issue].append(contact.handle_s)
            if contact.agent_id is not None:
                skills[contact.agent_id][contact.issue] += 1
                start = contact.service_start
                services[contact.agent_id].append((start, start + contact.handle_s))
    days = _calendar(arrivals)
    return Profile(
        interval_s=interval_s,
        days=days,
        arrivals=dict(arrivals),
        arrivals_by_channel=dict(by_channel),
        arrival_rate_per_hour=_rates(arrivals, days, interval_s),
        handle={issue: fit_handle(sample) for issue, sample in sorted(handles.items())},
        patience={
            issue: fit_patience([w for w, _ in pairs], [a for _, a in pairs])
            for issue, pairs in sorted(waits.items())
        },
        skills={agent: dict(counts) for agent, counts in sorted(skills.items())},
        proficiency={a: proficiency_from_counts(c) for a, c in sorted(skills.items())},
        on_duty={
            agent: duty_spans(spans, interval_s, max_duty_gap_s)
            for agent, spans in sorted(services.items())
        },
    )


def _calendar(arrivals: Mapping[tuple[str, int, str, int], int]) -> tuple[str, ...]:
    if not arrivals:
        return ()
    seen = sorted({key[0] for key in arrivals})
    first, last = (datetime.fromisoformat(d).replace(tzinfo=UTC) for d in (seen[0], seen[-1]))
    count = (last - first).days + 1
    return tuple(_day(first.timestamp() + k * _DAY_S) for k in range(count))


def _rates(
    arrivals: Mapping[tuple[str, int, str, int], int], days: Sequence[str], interval_s: int
) -> dict[tuple[int, int, str], float]:
    """Mean arrivals per hour by weekday × interval × issue; days without contacts count as 0."""
    weekday_of = {day: datetime.fromisoformat(day).weekday() for day in days}
    occurrences = Counter(weekday_of.values())
    totals: Counter[tuple[int, int, str]] = Counter()
    for (day, slot, issue, _), count in arrivals.items():
        totals[(weekday_of[day], slot, issue)] += count
    per_hour = 3600.0 / interval_s
    return {key: count * per_hour / occurrences[key[0]] for key, count in sorted(totals.items())}


@dataclass(frozen=True, slots=True)
class LogSummary:
    """Headline figures of a log, for a report or a sanity check."""

    contacts: int
    days: int
    contacts_per_day: float
    served: int
    abandoned: int
    phantom: int
    abandon_share: float  # abandoned / (served + abandoned)
    mean_handle_s: float
    mean_wait_s: float  # over served and abandoned contacts
    agents: int


def summarize(contacts: Sequence[LoggedContact]) -> LogSummary:
    """Counts, shares and means of a log, computed straight from its contacts."""
    outcomes = Counter(c.outcome for c in contacts)
    served, abandoned = outcomes["served"], outcomes["abandoned"]
    handles = [c.handle_s for c in contacts if c.handle_s is not None]
    waits = [c.wait_s for c in contacts if c.outcome != "phantom"]
    days = len({_day(c.arrived_at) for c in contacts})
    return LogSummary(
        contacts=len(contacts),
        days=days,
        contacts_per_day=len(contacts) / days if days else 0.0,
        served=served,
        abandoned=abandoned,
        phantom=outcomes["phantom"],
        abandon_share=abandoned / (served + abandoned) if served + abandoned else 0.0,
        mean_handle_s=float(np.mean(handles)) if handles else 0.0,
        mean_wait_s=float(np.mean(waits)) if waits else 0.0,
        agents=len({c.agent_id for c in contacts if c.agent_id is not None}),
    )
