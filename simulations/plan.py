"""What one simulation run is given: streams or replayed arrivals, agents, rules, journeys.

A `Plan` is plain data, already validated (``simulations.scenario`` builds one from YAML,
``simulations.replay`` from a contact log, ``simulations.headline`` derives the silo variant
of one). The engine only reads it, so a plan can be run again with another seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType

from router.assign import rule_for
from router.domain import Agent, AgentId, AgentKind, Channel, CustomerId
from router.rules import Rule, RuleBook, Weights
from simulations.models import NEVER, Distribution, Exponential, Stream


class History(StrEnum):
    """Which earlier contacts of a customer the answering agent (and routing) can see."""

    SHARED = "shared"  # omnichannel: every channel's contacts
    PER_CHANNEL = "per_channel"  # silos: only the contacts of the same channel
    NONE = "none"  # nothing at all


#: Routing weight presets a scenario or ``--policy`` can name; ``rules`` keeps each rule's own.
POLICY_WEIGHTS: Mapping[str, Weights | None] = MappingProxyType(
    {
        "rules": None,
        "omniroute": Weights(),
        "longest_idle": Weights(proficiency=0.0, idle=1.0, occupancy=0.0, affinity=0.0),
        "best_skill": Weights(proficiency=5.0, idle=0.5, occupancy=0.0, affinity=0.0),
        "sticky": Weights(proficiency=1.0, idle=1.0, occupancy=0.5, affinity=10.0),
    }
)


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """One agent of the plan: profile plus the periods when they take contacts.

    `exclusive_channels`: while holding a contact of one channel the agent takes none of the
    others (one call, or a few chats, not both) -- how blended desks usually work.
    """

    id: AgentId
    group: str
    skills: Mapping[str, int]
    capacity: Mapping[Channel, int]
    on_duty: tuple[tuple[float, float], ...]
    exclusive_channels: bool = False
    #: A bot (``Plan.bots``) has no capacity limit: capacity > 0 only says it serves a channel.
    kind: AgentKind = AgentKind.HUMAN

    def agent(self) -> Agent:
        """The core's agent (signed out): `group` is its one agent group, so a rule naming
        ``agent_groups`` routes to a person only when the group is in force (bots: any)."""
        return Agent(
            id=self.id,
            skills=self.skills,
            capacity=self.capacity,
            kind=self.kind,
            groups=frozenset({self.group}),
        )


@dataclass(frozen=True, slots=True)
class BotModel:
    """What a bot does with the contacts of one bot-first rule: how long it holds one
    (`handle`), and the share it resolves itself (`containment`, 0..1); the others it
    escalates to people, who see them with their original arrival time and priority."""

    handle: Distribution
    containment: float


@dataclass(frozen=True, slots=True)
class Journeys:
    """Customer journeys: an unresolved contact comes back later, maybe on another channel.

    P(resolved) = base + per_level x (agent's level in the issue's skill - 3)
    + with_history (the agent sees the customer's earlier contacts) + same_agent (the agent
    served this customer's issue before), clipped to [0, 1].
    """

    base: float = 1.0
    per_level: float = 0.0
    with_history: float = 0.0
    same_agent: float = 0.0
    return_delay: Distribution = field(default_factory=lambda: Exponential(3600.0))
    switch_channel: float = 0.0
    switch_to: Mapping[Channel, float] = field(default_factory=dict)
    abandon_retry: float = 0.0
    max_contacts: int = 4

    @property
    def enabled(self) -> bool:
        """Can a contact ever come back?"""
        return self.base < 1.0 or self.per_level > 0.0 or self.abandon_retry > 0.0


NO_JOURNEYS = Journeys()


@dataclass(frozen=True, slots=True)
class ReplayContact:
    """One contact of a log, replayed exactly: its arrival, and what it would do if served
    (`handle_s`) or if left waiting (`patience_s`, inf when it never gives up)."""

    arrived_at: float
    issue: str
    channel: Channel
    priority: int
    customer_id: CustomerId | None
    #: None: not known (the contact was not served); drawn from ``Plan.issue_handle``.
    handle_s: float | None
    patience_s: float
    #: > 0: patience is only known to exceed `patience_s`; add an exponential draw at this
    #: rate (per second) -- the memoryless remainder of a served caller's patience.
    extra_patience_rate: float = 0.0


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything a run needs besides its seed."""

    agents: tuple[AgentSpec, ...]
    rules: RuleBook
    horizon_s: float
    interval_s: float = 900.0
    streams: tuple[Stream, ...] = ()
    replay: tuple[ReplayContact, ...] = ()
    warmup_s: float = 0.0
    journeys: Journeys = NO_JOURNEYS
    history: History = History.SHARED
    weights: Weights | None = None
    name: str = "plan"
    #: Handle time and patience of a repeat on a channel the issue has no stream for.
    channel_handle: Mapping[Channel, Distribution] = field(default_factory=dict)
    channel_patience: Mapping[Channel, Distribution] = field(default_factory=dict)
    #: Handle time of an issue's replayed contacts whose own is unknown (abandoned ones).
    issue_handle: Mapping[str, Distribution] = field(default_factory=dict)
    #: Bots (agents of kind bot): they take only contacts whose rule sends them to a bot
    #: first (``router.assign.pick_bot``); never counted as staff.
    bots: tuple[AgentSpec, ...] = ()
    #: Per bot-first rule (by the rule's issue, ``default`` for the fallback rule).
    bot_models: Mapping[str, BotModel] = field(default_factory=dict)

    @property
    def n_intervals(self) -> int:
        """Reporting intervals covering the horizon."""
        return max(1, math.ceil(self.horizon_s / self.interval_s))

    def issues(self) -> tuple[str, ...]:
        """Issues of the plan, in first-seen order."""
        seen = dict.fromkeys([s.issue for s in self.streams] + [c.issue for c in self.replay])
        return tuple(seen)

    def channels(self) -> tuple[Channel, ...]:
        """Channels that may carry contacts (streams, replay, or a switch target)."""
        found = [s.channel for s in self.streams] + [c.channel for c in self.replay]
        found += [ch for ch, w in self.journeys.switch_to.items() if w > 0]
        return tuple(ch for ch in Channel if ch in set(found))

    def groups(self) -> tuple[str, ...]:
        """Agent groups, in first-seen order."""
        return tuple(dict.fromkeys(a.group for a in self.agents))

    def rule(self, issue: str) -> Rule:
        """The rule routing `issue` (the core's lookup), with the policy's weights if set."""
        rule = rule_for(self.rules, issue)
        return rule if self.weights is None else replace(rule, weights=self.weights)

    def bot_model(self, issue: str) -> BotModel | None:
        """The bot model of the rule routing `issue`, when that rule sends it to a bot first."""
        rule = self.rule(issue)
        return self.bot_models.get(rule.issue) if rule.bot_first else None

    def handle_patience(self, issue: str, channel: Channel) -> tuple[Distribution, Distribution]:
        """Handle-time and patience models for a contact of `issue` on `channel`."""
        for stream in self.streams:
            if stream.issue == issue and stream.channel == channel:
                return stream.handle, stream.patience
        same_issue = [s for s in self.streams if s.issue == issue]
        handle = self.channel_handle.get(channel) or (
            same_issue[0].handle if same_issue else Exponential(300.0)
        )
        return handle, self.channel_patience.get(channel, NEVER)
