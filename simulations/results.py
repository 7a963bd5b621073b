"""Figures from runs: per interval, issue and channel; across replications with 95% CIs.

Definitions (the planner's, and those of ``simulations.erlang``):

* offered: contacts that arrived; answered: given to an agent; abandoned: gave up waiting.
* bots: sent to a bot, contained (resolved by the bot: served, never in the people's queue),
  containment = contained / sent to a bot; the others were escalated to people. Like the
  live figures, service level and abandon rate are over the contacts that needed a person
  (offered - contained). An escalated contact keeps its arrival for its place in the queue
  and its relaxation; its wait (``wait``, ``escalated_asa_s``) counts from its arrival, the
  bot's time included, while service level judges the person's answer from the escalation
  (``escalated_after_bot_s``), as the live service does (``escalate.lua`` restarts
  ``since_ms``; ``accept_offer.lua`` measures the answer from it): the bot answered first.
* service level: answered by a person within the channel's target of entering the people's
  queue / (offered - contained) (an abandoned contact never counts as answered; a contact
  still waiting when the run ends counts as not answered).
* ASA: mean wait of answered contacts; mean and 90th-percentile wait: over answered and
  abandoned contacts (the wait an abandoned contact endured is its patience).
* occupancy of a group: time with at least one contact in hand / time on duty.
* repeat contacts: contacts of a customer after the first of a journey; channel switches:
  repeats on another channel than the journey's first contact.

Totals leave out contacts that arrived in the warm-up; per-interval figures keep them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.stats import t as student_t

from router.domain import Channel
from simulations.engine import simulate
from simulations.plan import Plan
from simulations.runlog import ABANDONED, ANSWERED, BOT_CONTAINED, BOT_ESCALATED, NO_BOT, RunLog

MEASURES = (
    "offered",
    "answered",
    "abandoned",
    "service_level",
    "abandon_rate",
    "asa_s",
    "mean_wait_s",
    "p90_wait_s",
    "repeats",
    "switches",
    "sent_to_bot",
    "contained",
    "containment",
    "bot_mean_s",
    "escalated_asa_s",
    "escalated_after_bot_s",
)


@dataclass(frozen=True, slots=True)
class Figures:
    """The measures of one slice of contacts (an interval, an issue, a channel, all)."""

    offered: int
    answered: int
    abandoned: int
    service_level: float
    abandon_rate: float
    asa_s: float
    mean_wait_s: float
    p90_wait_s: float
    repeats: int
    switches: int
    sent_to_bot: int = 0
    contained: int = 0
    containment: float = math.nan
    bot_mean_s: float = math.nan
    escalated_asa_s: float = math.nan
    escalated_after_bot_s: float = math.nan

    @property
    def for_people(self) -> int:
        """Contacts that needed a person: the offered ones a bot did not resolve."""
        return self.offered - self.contained

    def as_dict(self) -> dict[str, float]:
        """Measures by name (NaN where undefined, e.g. ASA with nothing answered)."""
        return {name: float(getattr(self, name)) for name in MEASURES}


def _figures(mask: NDArray[np.bool_], cols: _Columns) -> Figures:
    offered = int(mask.sum())
    answered_mask = mask & (cols.outcome == ANSWERED)
    abandoned_mask = mask & (cols.outcome == ABANDONED)
    answered = int(answered_mask.sum())
    waited = cols.wait[answered_mask | abandoned_mask]
    person_wait = np.maximum(cols.wait - cols.bot_s, 0.0)  # bot_s is 0 without a bot
    in_target = int((answered_mask & (person_wait <= cols.target)).sum())
    nan = math.nan
    to_bot = mask & (cols.bot != NO_BOT)
    sent = int(to_bot.sum())
    contained = int((mask & (cols.bot == BOT_CONTAINED)).sum())
    people = offered - contained
    escalated_answered = answered_mask & (cols.bot == BOT_ESCALATED)
    return Figures(
        offered=offered,
        answered=answered,
        abandoned=int(abandoned_mask.sum()),
        service_level=in_target / people if people else nan,
        abandon_rate=float(abandoned_mask.sum()) / people if people else nan,
        asa_s=float(cols.wait[answered_mask].mean()) if answered else nan,
        mean_wait_s=float(waited.mean()) if waited.size else nan,
        p90_wait_s=float(np.percentile(waited, 90)) if waited.size else nan,
        repeats=int((mask & cols.repeat).sum()),
        switches=int((mask & cols.switched).sum()),
        sent_to_bot=sent,
        contained=contained,
        containment=contained / sent if sent else nan,
        bot_mean_s=float(cols.bot_s[to_bot].mean()) if sent else nan,
        escalated_asa_s=float(cols.wait[escalated_answered].mean())
        if escalated_answered.any()
        else nan,
        escalated_after_bot_s=float(person_wait[escalated_answered].mean())
        if escalated_answered.any()
        else nan,
    )


@dataclass(frozen=True, slots=True)
class _Columns:
    arrived: NDArray[np.float64]
    interval: NDArray[np.int64]
    issue: NDArray[np.int64]
    channel: NDArray[np.int64]
    outcome: NDArray[np.int64]
    wait: NDArray[np.float64]
    target: NDArray[np.float64]
    repeat: NDArray[np.bool_]
    switched: NDArray[np.bool_]
    counted: NDArray[np.bool_]
    bot: NDArray[np.int64]
    bot_s: NDArray[np.float64]


def _columns(log: RunLog, plan: Plan) -> _Columns:
    issue = np.asarray(log.issue, dtype=np.int64)
    channel = np.asarray(log.channel, dtype=np.int64)
    targets = np.array([[plan.rule(i).target_s(ch) for ch in log.channels] for i in log.issues])
    arrived = np.asarray(log.arrived_s, dtype=np.float64)
    n_intervals = len(log.on_duty)
    return _Columns(
        arrived=arrived,
        interval=np.minimum((arrived // log.interval_s).astype(np.int64), n_intervals - 1),
        issue=issue,
        channel=channel,
        outcome=np.asarray(log.outcome, dtype=np.int64),
        wait=np.asarray(log.wait_s, dtype=np.float64),
        target=targets[issue, channel] if issue.size else np.zeros(0),
        repeat=np.asarray(log.repeat, dtype=np.bool_),
        switched=np.asarray(log.switched, dtype=np.bool_),
        counted=arrived >= log.warmup_s,
        bot=np.asarray(log.bot, dtype=np.int64),
        bot_s=np.asarray(log.bot_s, dtype=np.float64),
    )


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Everything reported about one run."""

    issues: tuple[str, ...]
    channels: tuple[Channel, ...]
    groups: tuple[str, ...]
    interval_s: float
    total: Figures
    by_issue: dict[str, Figures]
    by_channel: dict[Channel, Figures]
    by_issue_channel: dict[tuple[str, Channel], Figures]
    #: (interval index, issue, channel) -> figures, for every slice with an arrival.
    cells: dict[tuple[int, str, Channel], Figures]
    occupancy: dict[str, float]
    queue_length: list[list[float]]
    on_duty: list[float]
    first_contacts: int
    first_contact_resolution: float


def summarize(log: RunLog, plan: Plan) -> RunSummary:
    """Figures of one run, from its log."""
    cols = _columns(log, plan)
    counted = cols.counted
    by_issue = {
        name: _figures(counted & (cols.issue == i), cols) for i, name in enumerate(log.issues)
    }
    by_channel = {
        ch: _figures(counted & (cols.channel == j), cols) for j, ch in enumerate(log.channels)
    }
    pairs: dict[tuple[str, Channel], Figures] = {}
    for i, name in enumerate(log.issues):
        for j, ch in enumerate(log.channels):
            mask = counted & (cols.issue == i) & (cols.channel == j)
            if mask.any():
                pairs[(name, ch)] = _figures(mask, cols)
    cells: dict[tuple[int, str, Channel], Figures] = {}
    keys = cols.interval * 10_000 + cols.issue * 100 + cols.channel
    for key in np.unique(keys):
        k, rest = divmod(int(key), 10_000)
        i, j = divmod(rest, 100)
        cells[(k, log.issues[i], log.channels[j])] = _figures(keys == key, cols)
    occupancy = {
        g: (min(1.0, log.busy_s[n] / log.staffed_s[n]) if log.staffed_s[n] else math.nan)
        for n, g in enumerate(log.groups)
    }
    queue = [[area / log.interval_s for area in row] for row in log.queue_area]
    first = counted & ~cols.repeat
    resolved = np.asarray(log.resolved, dtype=np.int64)
    fcr = float((resolved[first] == 1).sum()) / int(first.sum()) if first.any() else math.nan
    return RunSummary(
        issues=log.issues,
        channels=log.channels,
        groups=log.groups,
        interval_s=log.interval_s,
        total=_figures(counted, cols),
        by_issue=by_issue,
        by_channel=by_channel,
        by_issue_channel=pairs,
        cells=cells,
        occupancy=occupancy,
        queue_length=queue,
        on_duty=list(log.on_duty),
        first_contacts=int(first.sum()),
        first_contact_resolution=fcr,
    )


@dataclass(frozen=True, slots=True)
class Estimate:
    """A measure over replications: mean and the half-width of its 95% confidence interval
    (Student's t with n-1 degrees of freedom; NaN half-width for a single replication)."""

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        """Lower end of the 95% interval."""
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        """Upper end of the 95% interval."""
        return self.mean + self.half_width

    def covers(self, value: float, slack: float = 0.0) -> bool:
        """Does the interval (widened by `slack` each side) contain `value`?"""
        return self.low - slack <= value <= self.high + slack


def estimate(values: Sequence[float]) -> Estimate:
    """Mean and 95% CI half-width of independent replications (NaNs ignored)."""
    data = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if data.size == 0:
        return Estimate(math.nan, math.nan, 0)
    if data.size == 1:
        return Estimate(float(data[0]), math.nan, 1)
    sd = float(data.std(ddof=1))
    half = float(student_t.ppf(0.975, data.size - 1)) * sd / math.sqrt(data.size)
    return Estimate(float(data.mean()), half, int(data.size))


@dataclass(frozen=True, slots=True)
class Replications:
    """Several independent runs of one plan: the summaries and their seeds."""

    plan: Plan
    seeds: tuple[int, ...]
    runs: tuple[RunSummary, ...]
    contacts: int

    def total(self, measure: str) -> Estimate:
        """A measure of all contacts, across replications."""
        return estimate([getattr(run.total, measure) for run in self.runs])

    def by_issue(self, issue: str, measure: str) -> Estimate:
        """A measure of one issue, across replications."""
        return estimate([getattr(run.by_issue[issue], measure) for run in self.runs])

    def by_channel(self, channel: Channel, measure: str) -> Estimate:
        """A measure of one channel, across replications."""
        return estimate([getattr(run.by_channel[channel], measure) for run in self.runs])

    def occupancy(self, group: str) -> Estimate:
        """Occupancy of an agent group, across replications."""
        return estimate([run.occupancy[group] for run in self.runs])

    def extra(self, name: str) -> Estimate:
        """A run-level figure (`first_contact_resolution`, `first_contacts`)."""
        return estimate([float(getattr(run, name)) for run in self.runs])


def replication_seed(seed: int, index: int) -> int:
    """Seed of replication `index` of a study seeded `seed` (independent streams)."""
    return seed * 1_000 + index


def replicate(
    plan: Plan, replications: int, seed: int, progress: Callable[[float], None] | None = None
) -> Replications:
    """Run `plan` `replications` times; the same `seed` gives the same figures."""
    runs, seeds, contacts = [], [], 0
    for index in range(replications):
        run_seed = replication_seed(seed, index)

        def step(done: float, index: int = index) -> None:
            if progress is not None:
                progress((index + done) / replications)

        log = simulate(plan, run_seed, step if progress is not None else None)
        contacts += log.contacts
        runs.append(summarize(log, plan))
        seeds.append(run_seed)
    if progress is not None:
        progress(1.0)
    return Replications(plan, tuple(seeds), tuple(runs), contacts)
