"""The routing domain: tenants, agents, contacts, channels, as immutable values.

Pure: no I/O, no clock. Times are seconds since the epoch (``float``) passed in by the
caller, so the live service and the simulator drive exactly the same code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import NewType

TenantId = NewType("TenantId", str)
AgentId = NewType("AgentId", str)
ContactId = NewType("ContactId", str)
CustomerId = NewType("CustomerId", str)

MIN_PROFICIENCY = 1
MAX_PROFICIENCY = 5
MIN_PRIORITY = 0
MAX_PRIORITY = 9
#: Free slots a bot has on a channel it serves: bots have no capacity limit.
BOT_SLOTS = 1_000_000
#: Customer satisfaction scores reported with outcomes.
MIN_SATISFACTION = 1
MAX_SATISFACTION = 5
#: How far ahead a customer may choose a callback time (seconds).
MAX_CALLBACK_AHEAD_S = 7 * 86_400

_EMPTY: Mapping[str, int] = MappingProxyType({})


class Channel(StrEnum):
    """The medium a contact arrives on. Routing follows the issue; the channel only sets
    which capacity slot the contact takes and how fast it must be answered."""

    VOICE = "voice"
    CHAT = "chat"
    SMS = "sms"
    EMAIL = "email"
    WHATSAPP = "whatsapp"
    SOCIAL = "social"


#: How fast each channel expects an answer unless a rule says otherwise (seconds).
DEFAULT_ANSWER_TARGET_S: Mapping[Channel, float] = MappingProxyType(
    {
        Channel.VOICE: 20.0,
        Channel.CHAT: 60.0,
        Channel.SMS: 300.0,
        Channel.WHATSAPP: 300.0,
        Channel.SOCIAL: 3600.0,
        Channel.EMAIL: 4 * 3600.0,
    }
)


class AgentState(StrEnum):
    """What an agent told us. Being busy is not a state: it is load against capacity."""

    SIGNED_OUT = "signed_out"
    AVAILABLE = "available"
    AWAY = "away"


class AgentKind(StrEnum):
    """A human agent, or a bot (a virtual agent served by the platform)."""

    HUMAN = "human"
    BOT = "bot"


class ContactStatus(StrEnum):
    """Where a contact is in its life."""

    QUEUED = "queued"
    OFFERED = "offered"
    ASSIGNED = "assigned"
    COMPLETED = "completed"
    ABANDONED = "abandoned"

    @property
    def is_open(self) -> bool:
        """Is the contact still waiting or being handled?"""
        return self in (ContactStatus.QUEUED, ContactStatus.OFFERED, ContactStatus.ASSIGNED)


@dataclass(frozen=True, slots=True)
class Agent:
    """One agent as routing sees it: profile (skills, capacity) and live state (load)."""

    id: AgentId
    skills: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    capacity: Mapping[Channel, int] = field(default_factory=dict)
    load: Mapping[Channel, int] = field(default_factory=dict)
    state: AgentState = AgentState.SIGNED_OUT
    idle_since: float = 0.0
    version: int = 0
    display_name: str = ""
    away_reason: str = ""
    kind: AgentKind = AgentKind.HUMAN
    state_since: float = 0.0
    missed_offers: int = 0
    #: Agent groups the agent belongs to (teams, sites, outsourcers); a rule may route to
    #: some groups only and widen to others as the contact waits (``router.rules``).
    groups: frozenset[str] = frozenset()

    @property
    def is_available(self) -> bool:
        """Has the agent said they may receive offers?"""
        return self.state is AgentState.AVAILABLE

    @property
    def is_bot(self) -> bool:
        """Is the agent a bot (served by the platform, no capacity limit)?"""
        return self.kind is AgentKind.BOT

    def free_slots(self, channel: Channel) -> int:
        """Contacts of `channel` the agent could still take on (a bot: without limit on
        the channels it serves)."""
        capacity = self.capacity.get(channel, 0)
        if self.kind is AgentKind.BOT:
            return BOT_SLOTS if capacity > 0 else 0
        return max(0, capacity - self.load.get(channel, 0))

    @property
    def occupancy(self) -> float:
        """Share of the agent's total capacity in use, 0..1 (0 for an agent with none)."""
        total = sum(self.capacity.values())
        return min(1.0, sum(self.load.values()) / total) if total else 0.0

    @property
    def contacts_in_hand(self) -> int:
        """Contacts offered to or held by the agent, across channels."""
        return sum(self.load.values())

    def with_load(self, channel: Channel, delta: int) -> Agent:
        """The same agent with `delta` more contacts of `channel` in hand."""
        load = dict(self.load)
        load[channel] = max(0, load.get(channel, 0) + delta)
        return replace(self, load=load)


@dataclass(frozen=True, slots=True)
class QueueSignals:
    """Queue state measured by the router for one contact, read by relaxation steps that
    trigger on it (``router.rules.RelaxationStep``); None where unknown."""

    #: Expected wait of the contact's issue and channel (``router.estimate``), seconds.
    expected_wait_s: float | None = None
    #: Today's service level so far of the contact's issue and channel, 0..1.
    service_level: float | None = None
    #: Available agents eligible for the contact under its time-relaxed requirements.
    eligible_agents: int | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    """One request from a customer on one channel, as routing sees it."""

    id: ContactId
    channel: Channel
    issue: str
    arrived_at: float
    priority: int = 0
    language: str = ""
    customer_id: CustomerId | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    #: Agent who last handled this customer's same issue, from the history (sticky routing).
    last_agent_id: AgentId | None = None
    #: Agents who served this customer before, most recent first.
    known_agent_ids: tuple[AgentId, ...] = ()
    #: Agents who recently declined it or let its offer expire; tried last.
    declined_by: tuple[AgentId, ...] = ()
    #: Why history makes this a repeat contact ("" when it is not; ``router.history``).
    repeat: str = ""
    #: Queue state for relaxation steps that trigger on it (None: waiting time only).
    signals: QueueSignals | None = None
    #: Its rule sends it to a bot first and no bot has handed it on yet: only bots may take
    #: it (people too while no bot can; ``router.policy.decide``).
    bot_first: bool = False

    def waited_s(self, now: float) -> float:
        """Seconds the contact has waited at `now` (never negative)."""
        return max(0.0, now - self.arrived_at)
