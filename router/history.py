"""What a customer's history says about a new contact: the agents who served it before
(sticky routing) and whether it is a repeat contact.

Pure: the history entries are passed in (newest first), and so is `now`.

A contact is a **repeat contact** when, within the rule's ``repeat_window_s`` before `now`,
the customer's newest entry about the same issue

* did not end resolved (abandoned, or completed unresolved or transferred): reason
  ``unresolved``; or
* came in on another channel: reason ``channel_switch`` (the customer switched channel).

An unresolved earlier attempt wins when both hold. A repeat contact gets the rule's
priority boost and proficiency floor (``Rule.repeat_priority_boost``,
``Rule.repeat_min_proficiency``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from router.domain import MAX_PRIORITY, AgentId, Channel, Contact
from router.rules import Rule

RESOLVED = "resolved"
COMPLETED = "completed"
UNRESOLVED = "unresolved"
CHANNEL_SWITCH = "channel_switch"
#: Agents who served the customer before, kept as routing hints.
KNOWN_AGENTS = 5


class Entry(Protocol):
    """One history entry, as ``queues.records.HistoryItem`` holds it."""

    @property
    def channel(self) -> Channel: ...
    @property
    def issue(self) -> str: ...
    @property
    def agent_id(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def time_ms(self) -> int: ...


@dataclass(frozen=True, slots=True)
class HistoryFacts:
    """What routing takes from the history of a contact's customer."""

    last_agent_id: AgentId | None = None
    known_agent_ids: tuple[AgentId, ...] = ()
    #: "" (not a repeat contact), ``unresolved`` or ``channel_switch``.
    repeat: str = ""
    #: Channel of the earlier contact the repeat refers to (for first-contact resolution).
    previous_channel: Channel | None = None


def history_facts(
    history: Sequence[Entry], contact: Contact, rule: Rule, now: float
) -> HistoryFacts:
    """Routing hints and repeat status of `contact`, from its customer's `history`."""
    last: AgentId | None = None
    known: list[AgentId] = []
    for item in history:
        if not item.agent_id or item.status != COMPLETED:
            continue
        if last is None and item.issue == contact.issue:
            last = AgentId(item.agent_id)
        if item.agent_id not in known:
            known.append(AgentId(item.agent_id))
    since_ms = (now - rule.repeat_window_s) * 1000
    previous = next(
        (h for h in history if h.issue == contact.issue and h.time_ms >= since_ms), None
    )
    repeat = ""
    if previous is not None:
        if previous.status != COMPLETED or previous.outcome != RESOLVED:
            repeat = UNRESOLVED
        elif previous.channel is not contact.channel:
            repeat = CHANNEL_SWITCH
    return HistoryFacts(
        last_agent_id=last,
        known_agent_ids=tuple(known[:KNOWN_AGENTS]),
        repeat=repeat,
        previous_channel=previous.channel if repeat and previous is not None else None,
    )


def switched_channel(facts: HistoryFacts, contact: Contact) -> bool:
    """Did the customer come back about the issue on another channel (within the window)?"""
    return facts.previous_channel is not None and facts.previous_channel is not contact.channel


def shaped(contact: Contact, facts: HistoryFacts, rule: Rule) -> Contact:
    """`contact` with its history hints, and for a repeat contact the rule's priority boost
    (the proficiency floor applies through ``Rule.requirements``)."""
    priority = contact.priority
    if facts.repeat and rule.repeat_priority_boost:
        priority = min(MAX_PRIORITY, priority + rule.repeat_priority_boost)
    return replace(
        contact,
        last_agent_id=facts.last_agent_id,
        known_agent_ids=facts.known_agent_ids,
        repeat=facts.repeat,
        priority=priority,
    )


def repeat_counters(contact: Contact, facts: HistoryFacts) -> dict[str, int]:
    """Today's counters a repeat contact adds (``issue:channel:counter`` fields):
    ``repeat`` and ``switch`` on its own channel, ``came_back`` on the channel of the
    earlier contact (which, resolved or not, did not settle the issue the first time)."""
    if not facts.repeat:
        return {}
    prefix = f"{contact.issue}:{contact.channel.value}:"
    counters = {prefix + "repeat": 1}
    if switched_channel(facts, contact):
        counters[prefix + "switch"] = 1
    if facts.previous_channel is not None:
        counters[f"{contact.issue}:{facts.previous_channel.value}:came_back"] = 1
    return counters
