"""One routing pass's decisions: history affinity holds, then greedy or joint assignment.

Pure. `decide` is what the live pass (``router.dispatch``) and the simulator call:

0. Contacts sent to a **bot first** (``Contact.bot_first``) go to a bot
   (``router.assign.pick_bot``; bots have no capacity limit, so they never compete); one no
   bot can take now is decided with the others below, by people.
1. Contacts **held** for their preferred agents (``router.affinity``) are decided first,
   in queue order, each among its preferred agents only (``pick_agent`` over a floor of
   those agents, counting the slots already handed out).
2. The other contacts are assigned greedily (``router.assign.assign``); when the mode
   allows it, at least `JOINT_MIN` of them wait while at least `JOINT_MIN` agents have a
   free slot on their channels, and the greedy round shows contention (some contact did
   not get the agent it would have had alone), they are assigned **jointly** instead
   (``router.joint.joint_assign``, OR-Tools). The slots the held contacts took are
   counted: the floor carries their load during the call and is restored afterwards.

Every result says whether it was a joint decision and which hold applied, for the
explanation (``router.explain``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from router.affinity import Hold, hold_for
from router.assign import Decision, Floor, assign, pick_agent, pick_bot, queue_rank, rule_for
from router.domain import Agent, AgentId, Channel, Contact, ContactId
from router.joint import joint_assign
from router.rules import RuleBook

#: Joint assignment needs at least this many contacts and this many open agents.
JOINT_MIN = 2


class JointMode(StrEnum):
    """When a pass assigns jointly: ``auto`` (enough contacts and open agents) or ``off``."""

    AUTO = "auto"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class Routed:
    """One decision of a pass with how it was reached."""

    decision: Decision
    joint: bool = False
    hold: Hold | None = None


def open_agents(floor: Floor, channels: Sequence[Channel], enough: int = JOINT_MIN) -> int:
    """Available agents with a free slot on any of `channels` (counting stops at `enough`)."""
    seen: set[AgentId] = set()
    for channel in channels:
        for agent in floor.open_candidates({}, channel)[1]:
            seen.add(agent.id)
            if len(seen) >= enough:
                return len(seen)
    return len(seen)


def _contended(
    decisions: Sequence[Decision],
    contacts: Sequence[Contact],
    floor: Floor,
    rules: RuleBook,
    now: float,
) -> bool:
    """Did contacts compete in the greedy round? If every contact that any agent could
    serve got the agent it would have had alone, the greedy answer is already what the
    joint model maximises (everyone servable served, each with its own best score, ties
    broken as ``pick_agent`` does), so the solver is skipped: the common case on a floor
    with agents to spare, where it would only cost time."""
    chosen = {d.contact.id: d.agent.id for d in decisions}
    for contact in contacts:
        alone = pick_agent(contact, floor, rule_for(rules, contact.issue), now)
        if alone is None:
            continue
        if chosen.get(contact.id) != alone.agent.id:
            return True
    return False


def decide(
    contacts: Sequence[Contact],
    floor: Floor,
    rules: RuleBook,
    now: float,
    mode: JointMode = JointMode.AUTO,
) -> list[Routed]:
    """Decisions for `contacts` at `now` (see the module docstring). Leaves `floor` as it
    found it."""
    routed: list[Routed] = []
    people: list[Contact] = []
    for contact in contacts:
        to_bot = None
        if contact.bot_first:
            to_bot = pick_bot(contact, floor, rule_for(rules, contact.issue), now)
        if to_bot is not None:
            routed.append(Routed(to_bot))
        else:
            people.append(contact)
    holds: dict[ContactId, Hold] = {}
    free: list[Contact] = []
    for contact in people:
        hold = hold_for(contact, rule_for(rules, contact.issue), floor, now)
        if hold is None:
            free.append(contact)
        else:
            holds[contact.id] = hold
    taken: Counter[tuple[AgentId, Channel]] = Counter()
    if holds:
        held = sorted(
            (c for c in people if c.id in holds),
            key=lambda c: queue_rank(c, rule_for(rules, c.issue)),
        )
        for contact in held:
            hold = holds[contact.id]
            mini = Floor(a for a in map(floor.get, hold.agents) if a is not None)
            decision = pick_agent(contact, mini, rule_for(rules, contact.issue), now, taken)
            if decision is not None:
                taken[(decision.agent.id, contact.channel)] += 1
                routed.append(Routed(decision, hold=hold))
    if not free:
        return routed
    originals: list[Agent] = []
    try:
        for (agent_id, channel), n in taken.items():
            agent = floor.get(agent_id)
            if agent is not None:
                originals.append(agent)
                floor.put(agent.with_load(channel, n))
        channels = sorted({c.channel for c in free})
        joint = (
            mode is JointMode.AUTO
            and len(free) >= JOINT_MIN
            and open_agents(floor, channels) >= JOINT_MIN
        )
        decisions = assign(free, floor, rules, now)
        if joint and _contended(decisions, free, floor, rules, now):
            decisions = joint_assign(free, floor, rules, now)
        else:
            joint = False
    finally:
        for agent in reversed(originals):
            floor.put(agent)
    routed.extend(Routed(d, joint=joint) for d in decisions)
    return routed
