"""Stochastic models of a contact center: time distributions, arrival processes, shifts.

Everything random draws from a `random.Random` passed in, so a run is a function of its
seed. Distributions are parametrised by their mean (and spread) in seconds because that is
what a planner reads off a report: "handle time 5 minutes, lognormal, sd 4 minutes".
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from router.domain import Channel


class Distribution(Protocol):
    """A non-negative random duration in seconds."""

    @property
    def mean_s(self) -> float:
        """Expected value in seconds (inf for 'never')."""
        ...

    def sample(self, rng: random.Random) -> float:
        """One draw, in seconds."""
        ...


@dataclass(frozen=True, slots=True)
class Exponential:
    """Memoryless durations: the M in M/M/c and the patience of Erlang A."""

    mean: float

    @property
    def mean_s(self) -> float:
        """Expected value in seconds."""
        return self.mean

    def sample(self, rng: random.Random) -> float:
        """One draw, in seconds."""
        return rng.expovariate(1.0 / self.mean)


@dataclass(frozen=True, slots=True)
class Lognormal:
    """Right-skewed durations given by mean and standard deviation in seconds (service
    times of call centers are close to lognormal: Brown et al. 2005)."""

    mean: float
    sd: float
    mu: float = field(init=False)
    sigma: float = field(init=False)

    def __post_init__(self) -> None:
        variance = math.log1p((self.sd / self.mean) ** 2)
        object.__setattr__(self, "sigma", math.sqrt(variance))
        object.__setattr__(self, "mu", math.log(self.mean) - variance / 2.0)

    @property
    def mean_s(self) -> float:
        """Expected value in seconds."""
        return self.mean

    def sample(self, rng: random.Random) -> float:
        """One draw, in seconds."""
        return rng.lognormvariate(self.mu, self.sigma)


@dataclass(frozen=True, slots=True)
class Empirical:
    """Resampling of observed durations (e.g. from a contact log), uniformly at random."""

    values: tuple[float, ...]

    @property
    def mean_s(self) -> float:
        """Mean of the observations."""
        return sum(self.values) / len(self.values)

    def sample(self, rng: random.Random) -> float:
        """One of the observations."""
        return self.values[int(rng.random() * len(self.values))]


@dataclass(frozen=True, slots=True)
class Fixed:
    """Always the same duration (deterministic service, or 'never' with inf)."""

    value: float

    @property
    def mean_s(self) -> float:
        """The value."""
        return self.value

    def sample(self, rng: random.Random) -> float:
        """The value."""
        return self.value


NEVER = Fixed(math.inf)


@dataclass(frozen=True, slots=True)
class Stream:
    """One arrival stream: contacts of one issue on one channel, with their handle time
    and patience. `rates_per_s[i]` holds from `i * interval_s`; the last rate holds to
    the horizon (a constant stream has one rate)."""

    issue: str
    channel: Channel
    rates_per_s: tuple[float, ...]
    interval_s: float
    handle: Distribution
    patience: Distribution = NEVER
    priority: int = 0
    language: str = ""

    def rate_at(self, t: float) -> float:
        """Arrival rate (per second) in force at `t`."""
        index = min(int(t // self.interval_s), len(self.rates_per_s) - 1)
        return self.rates_per_s[index]

    def expected_count(self, horizon_s: float) -> float:
        """Mean number of arrivals in [0, horizon_s)."""
        total, t = 0.0, 0.0
        while t < horizon_s:
            end = min(horizon_s, (math.floor(t / self.interval_s) + 1) * self.interval_s)
            total += self.rate_at(t) * (end - t)
            t = end
        return total


def poisson_arrivals(stream: Stream, horizon_s: float, rng: random.Random) -> list[float]:
    """Arrival times of a non-homogeneous Poisson process with a piecewise-constant rate.

    Exact, not thinned: within an interval the process is homogeneous, and by the memoryless
    property a draw that overruns the interval may be restarted at its end.
    """
    times: list[float] = []
    append = times.append
    expovariate = rng.expovariate
    start = 0.0
    count = len(stream.rates_per_s)
    for i in range(count):
        end = horizon_s if i == count - 1 else min(horizon_s, (i + 1) * stream.interval_s)
        rate = stream.rates_per_s[i]
        if rate > 0:
            t = start + expovariate(rate)
            while t < end:
                append(t)
                t += expovariate(rate)
        start = end
        if start >= horizon_s:
            break
    return times


@dataclass(frozen=True, slots=True)
class Break:
    """A pause within a shift: from `at_s` (seconds after the shift's start) for
    `length_s`. An agent finishes the contacts in hand but takes no new ones."""

    at_s: float
    length_s: float


@dataclass(frozen=True, slots=True)
class Shift:
    """One working period in simulated seconds, with its breaks."""

    start_s: float
    end_s: float
    breaks: tuple[Break, ...] = ()

    def on_duty(self) -> list[tuple[float, float]]:
        """The periods of the shift when the agent takes contacts, in time order."""
        periods: list[tuple[float, float]] = []
        t = self.start_s
        for pause in sorted(self.breaks, key=lambda b: b.at_s):
            begin = self.start_s + pause.at_s
            if begin > t:
                periods.append((t, min(begin, self.end_s)))
            t = max(t, begin + pause.length_s)
        if t < self.end_s:
            periods.append((t, self.end_s))
        return [(a, b) for a, b in periods if b > a]


def merge_periods(periods: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Union of possibly overlapping periods, sorted (two shifts may touch)."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(periods):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def on_duty_seconds(periods: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of `periods` that fall within [start, end)."""
    return sum(max(0.0, min(b, end) - max(a, start)) for a, b in periods)
