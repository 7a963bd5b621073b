"""History affinity with a bounded wait: hold a returning customer's contact for the agent
who last handled the issue (else the agents who served the customer before) for at most
the rule's ``affinity_wait_s``, then let anyone eligible take it.

Pure. A contact is **held** at `now` when all of these are true:

* its rule sets ``affinity_wait_s`` > 0 and the contact has waited less than that;
* the preferred agents have not declined it or let its offer expire, are signed in
  (available or away: someone signed in may come back or free a slot within the bound)
  and hold every skill the contact needs now (an agent who can never be eligible is not
  worth waiting for).

The preferred agents are the last agent when that agent qualifies, else the known agents
who qualify. While held, only they may take the contact; other agents are withheld from
it. The score still prefers the last agent among eligible agents after the bound
(``Weights.affinity``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from router.assign import Floor
from router.domain import AgentId, AgentState, Contact
from router.rules import Rule
from router.scoring import has_skills

LAST = "last_agent"
KNOWN = "known_agents"


@dataclass(frozen=True, slots=True)
class Hold:
    """A contact reserved for its preferred agents until `until` (seconds, epoch)."""

    agents: tuple[AgentId, ...]
    kind: str
    until: float

    def describe(self, now: float) -> str:
        """E.g. ``last_agent a1, 12.5 s left``."""
        return f"{self.kind} {','.join(self.agents)}, {max(0.0, self.until - now):.1f} s left"


def hold_for(contact: Contact, rule: Rule, floor: Floor, now: float) -> Hold | None:
    """The hold on `contact` at `now`, or None when anyone eligible may take it."""
    if rule.affinity_wait_s <= 0 or (contact.last_agent_id is None and not contact.known_agent_ids):
        return None
    if contact.waited_s(now) >= rule.affinity_wait_s:
        return None
    required = rule.requirements(contact, now)
    until = contact.arrived_at + rule.affinity_wait_s
    if contact.last_agent_id is not None and _qualifies(
        floor, contact.last_agent_id, required, contact.declined_by
    ):
        return Hold((contact.last_agent_id,), LAST, until)
    known = tuple(
        a for a in contact.known_agent_ids if _qualifies(floor, a, required, contact.declined_by)
    )
    return Hold(known, KNOWN, until) if known else None


def _qualifies(
    floor: Floor, agent_id: AgentId, required: dict[str, int], declined: tuple[AgentId, ...]
) -> bool:
    agent = floor.get(agent_id)
    return (
        agent is not None
        and not agent.is_bot  # a bot in the history (it escalated) is nobody to wait for
        and agent_id not in declined
        and agent.state is not AgentState.SIGNED_OUT
        and has_skills(agent, required)
    )


def next_release(holds: Iterable[Hold]) -> float | None:
    """When the earliest hold ends (the router should look again then), or None."""
    return min((h.until for h in holds), default=None)
