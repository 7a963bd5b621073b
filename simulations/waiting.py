"""Waiting contacts of a run, grouped so that a freed agent finds its candidates fast.

One FIFO per (channel, issue, priority, language): within such a group the queue order of
the core (``queue_rank``: priority, then deadline = arrival + the channel's target) is the
arrival order, and the oldest contact is the most relaxed. So the heads of the groups are
the only contacts a freed agent needs to look at. Contacts that leave the middle of a group
(abandon, relax into service) are dropped lazily when they reach its head. A contact a bot
escalates comes back with its original arrival, so it is placed by arrival, not at the end.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterator, Mapping

from router.domain import AgentId, Channel, Contact
from router.rules import Rule
from simulations.runlog import RunLog


class Job:
    """A contact in the simulation, with what the customer will do: handle time if served,
    patience if left waiting, and where it is in the customer's journey; for a bot-first
    contact, its time with a bot and whether the bot resolves it."""

    __slots__ = (
        "abandon_at",
        "agent_id",
        "bot_s",
        "contact",
        "contained",
        "first_channel",
        "handle_s",
        "index",
        "journey_step",
        "patience_s",
        "since",
        "waiting",
    )

    def __init__(
        self,
        contact: Contact,
        handle_s: float,
        patience_s: float,
        journey_step: int,
        first_channel: Channel,
    ) -> None:
        self.contact = contact
        self.handle_s = handle_s
        self.patience_s = patience_s
        self.journey_step = journey_step
        self.first_channel = first_channel
        self.index = -1
        self.waiting = False
        self.agent_id: AgentId | None = None
        self.bot_s = 0.0
        self.contained = False
        #: When its current wait ends in abandonment (an earlier wait's event is stale).
        self.abandon_at = math.inf
        #: When it joined the people's queue: its arrival, or a bot's escalation (the live
        #: service level's start, ``since_ms``; read for queue signals only).
        self.since = contact.arrived_at


GroupKey = tuple[Channel, str, int, str]


class WaitingRoom:
    """The queue of one run, with its length integrated over time per interval and channel."""

    def __init__(self, log: RunLog, interval_s: float) -> None:
        self._log = log
        self._interval_s = interval_s
        self._groups: dict[GroupKey, deque[Job]] = {}
        self._by_channel: dict[Channel, list[deque[Job]]] = {ch: [] for ch in Channel}
        self._channel_index = {ch: i for i, ch in enumerate(log.channels)}
        self._length = [0] * len(log.channels)
        self._since = [0.0] * len(log.channels)
        self.count = 0

    def enter(self, job: Job, rule: Rule, now: float) -> None:
        """`job` starts waiting at `now`."""
        contact = job.contact
        key = (contact.channel, contact.issue, contact.priority, contact.language)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = deque()
            self._by_channel[contact.channel].append(group)
        if group and not _after(job, group[-1]):
            self._insert(group, job)
        else:
            group.append(job)
        job.waiting = True
        self.count += 1
        self._change(self._channel_index[contact.channel], 1, now)

    @staticmethod
    def _insert(group: deque[Job], job: Job) -> None:
        """Place `job` by arrival (an escalated contact); not twice, if an earlier wait of
        its own is still in the group (removal is lazy)."""
        i = len(group)
        while i and _after(group[i - 1], job):
            i -= 1
        if not (i and group[i - 1] is job):
            group.insert(i, job)

    def leave(self, job: Job, now: float) -> None:
        """`job` stops waiting (answered or abandoned); removal from its group is lazy."""
        job.waiting = False
        self.count -= 1
        self._change(self._channel_index[job.contact.channel], -1, now)

    def heads(self, channel: Channel) -> Iterator[Job]:
        """The oldest waiting contact of each group on `channel`."""
        for group in self._by_channel[channel]:
            while group and not group[0].waiting:
                group.popleft()
            if group:
                yield group[0]

    def classes(
        self, channel: Channel, cuts: Mapping[str, tuple[float, ...]], now: float
    ) -> Iterator[Job]:
        """`heads`, and in a group whose issue has `cuts` (its steps' waiting times,
        descending), the oldest waiting contact that has waited less than each cut at
        `now`: contacts in between wait under the same steps, so they stand or fall with
        the one yielded (rules with queue-state steps, where the oldest is not always the
        most relaxed: its signals may differ)."""
        for group in self._by_channel[channel]:
            while group and not group[0].waiting:
                group.popleft()
            if not group:
                continue
            last = group[0]
            yield last
            for cut in cuts.get(last.contact.issue, ()):
                # waited < cut, computed as the core does (now - arrived_at), negated
                i = bisect.bisect_right(group, -cut, key=lambda j: j.contact.arrived_at - now)
                while i < len(group) and not group[i].waiting:
                    i += 1
                if i < len(group) and group[i] is not last:
                    last = group[i]
                    yield last

    def all_waiting(self) -> list[Job]:
        """Contacts still waiting, in arrival order per group."""
        jobs = (job for group in self._groups.values() for job in group if job.waiting)
        return list(dict.fromkeys(jobs))  # a job waiting again may appear twice (lazy removal)

    def close(self, end_s: float) -> None:
        """Integrate the queue lengths up to `end_s` (the end of the run)."""
        for i in range(len(self._length)):
            self._change(i, 0, end_s)

    def _change(self, channel: int, delta: int, now: float) -> None:
        length, since = self._length[channel], self._since[channel]
        if length and now > since:
            area = self._log.queue_area
            width = self._interval_s
            last = len(area) - 1
            t = since
            while t < now:
                k = min(int(t // width), last)
                edge = now if k == last else min(now, (k + 1) * width)
                area[k][channel] += length * (edge - t)
                t = edge if edge > t else math.inf
        self._length[channel] = length + delta
        self._since[channel] = now


def _after(a: Job, b: Job) -> bool:
    """Does `a` come after `b` in its group (later arrival, then id)?"""
    return (a.contact.arrived_at, a.contact.id) > (b.contact.arrived_at, b.contact.id)
