"""The raw record of one run: one row per contact in parallel lists, plus agent time.

Kept as flat lists while the loop runs (appending is the cheapest thing Python does) and
turned into figures afterwards by ``simulations.results``.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.domain import Channel
from simulations.models import on_duty_seconds
from simulations.plan import Plan

#: Outcomes; CONTAINED: resolved by a bot, never in the people's queue.
ANSWERED, ABANDONED, UNANSWERED, CONTAINED = 0, 1, 2, 3
#: What a bot did with a contact (``RunLog.bot``): none took it, it resolved it, it escalated it.
NO_BOT, BOT_CONTAINED, BOT_ESCALATED = 0, 1, 2
#: Outcome of a contact still open when the row is written (overwritten later).
OPEN = -1


@dataclass(slots=True)
class RunLog:
    """Rows per contact (arrival, issue, channel, outcome, wait, ...) and per agent group."""

    issues: tuple[str, ...]
    channels: tuple[Channel, ...]
    groups: tuple[str, ...]
    interval_s: float
    horizon_s: float
    warmup_s: float
    arrived_s: list[float]
    issue: list[int]
    channel: list[int]
    repeat: list[bool]
    switched: list[bool]
    outcome: list[int]
    wait_s: list[float]
    group: list[int]
    resolved: list[int]
    #: NO_BOT, BOT_CONTAINED or BOT_ESCALATED, and the time the contact spent with a bot.
    bot: list[int]
    bot_s: list[float]
    #: Integral of the queue length over time, [interval][channel] (contact-seconds).
    queue_area: list[list[float]]
    busy_s: list[float]
    staffed_s: list[float]
    #: Mean number of agents on duty, per interval.
    on_duty: list[float]
    end_s: float = 0.0
    returns_after_horizon: int = 0

    @classmethod
    def empty(cls, plan: Plan) -> RunLog:
        """A log with no contacts yet; agent time on duty is known from the plan."""
        groups = plan.groups()
        channels = plan.channels()
        n = plan.n_intervals
        staffed = [0.0] * len(groups)
        on_duty = [0.0] * n
        index = {g: i for i, g in enumerate(groups)}
        for spec in plan.agents:
            staffed[index[spec.group]] += on_duty_seconds(spec.on_duty, 0.0, plan.horizon_s)
            for k in range(n):
                start = k * plan.interval_s
                end = min(plan.horizon_s, start + plan.interval_s)
                on_duty[k] += on_duty_seconds(spec.on_duty, start, end) / max(end - start, 1e-9)
        return cls(
            issues=plan.issues(),
            channels=channels,
            groups=groups,
            interval_s=plan.interval_s,
            horizon_s=plan.horizon_s,
            warmup_s=plan.warmup_s,
            arrived_s=[],
            issue=[],
            channel=[],
            repeat=[],
            switched=[],
            outcome=[],
            wait_s=[],
            group=[],
            resolved=[],
            bot=[],
            bot_s=[],
            queue_area=[[0.0] * len(channels) for _ in range(n)],
            busy_s=[0.0] * len(groups),
            staffed_s=staffed,
            on_duty=on_duty,
        )

    def add_contact(self, t: float, issue: int, channel: int, repeat: bool, switched: bool) -> int:
        """Record an arrival; returns the row index."""
        self.arrived_s.append(t)
        self.issue.append(issue)
        self.channel.append(channel)
        self.repeat.append(repeat)
        self.switched.append(switched)
        self.outcome.append(OPEN)
        self.wait_s.append(0.0)
        self.group.append(-1)
        self.resolved.append(-1)
        self.bot.append(NO_BOT)
        self.bot_s.append(0.0)
        return len(self.arrived_s) - 1

    def answer(self, row: int, wait_s: float, group: int) -> None:
        """The contact of `row` was given to an agent of `group` after `wait_s`."""
        self.outcome[row] = ANSWERED
        self.wait_s[row] = wait_s
        self.group[row] = group

    def bot_done(self, row: int, bot_s: float, contained: bool) -> None:
        """A bot held the contact of `row` for `bot_s` and resolved it or escalated it."""
        self.bot[row] = BOT_CONTAINED if contained else BOT_ESCALATED
        self.bot_s[row] = bot_s
        if contained:
            self.outcome[row] = CONTAINED
            self.resolved[row] = 1

    @property
    def contacts(self) -> int:
        """Contacts simulated (first contacts and repeats)."""
        return len(self.arrived_s)
