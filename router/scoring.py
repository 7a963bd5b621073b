"""Eligibility and the agent score: who may take a contact, and who should.

Pure functions of their arguments. The score is a weighted sum of components normalised
to 0..1, so that the weights of a rule (``router.rules.Weights``) read as plain
importances: proficiency, idle time (fairness), free capacity (occupancy) and history
affinity. Ties are broken by idle time, then by agent id, so a decision never depends on
iteration order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from router.domain import MAX_PROFICIENCY, Agent, Contact
from router.rules import Weights, groups_of


@dataclass(frozen=True, slots=True)
class Score:
    """An agent's score for one contact, with the components that made it."""

    total: float
    proficiency: float
    idle: float
    occupancy: float
    affinity: float

    def components(self) -> dict[str, float]:
        """The normalised components (0..1), by name, for explanations and logs."""
        return {
            "proficiency": round(self.proficiency, 4),
            "idle": round(self.idle, 4),
            "occupancy": round(self.occupancy, 4),
            "affinity": round(self.affinity, 4),
        }


def has_skills(agent: Agent, required: Mapping[str, int]) -> bool:
    """Does `agent` hold every required skill at its minimum level, and belong to one of
    the required agent groups when `required` names some (``router.rules.Requirements``)?"""
    skills = agent.skills
    if not all(skills.get(skill, 0) >= level for skill, level in required.items()):
        return False
    groups = groups_of(required)
    return groups is None or not agent.groups.isdisjoint(groups)


def eligible(agent: Agent, contact: Contact, required: Mapping[str, int], taken: int = 0) -> bool:
    """May `agent` take `contact`? Available, a free slot on the contact's channel once
    `taken` tentative reservations are counted, and every required skill."""
    return (
        agent.is_available
        and agent.free_slots(contact.channel) > taken
        and has_skills(agent, required)
    )


def score(
    agent: Agent,
    contact: Contact,
    required: Mapping[str, int],
    weights: Weights,
    now: float,
    taken: int = 0,
) -> Score:
    """How well `agent` suits `contact` at `now` (higher is better)."""
    if required:
        proficiency = sum(
            min(agent.skills.get(skill, 0), MAX_PROFICIENCY) for skill in required
        ) / (MAX_PROFICIENCY * len(required))
    else:
        proficiency = 0.0
    idle = min(1.0, max(0.0, now - agent.idle_since) / weights.idle_horizon_s)
    total_capacity = sum(agent.capacity.values())
    if total_capacity:
        occupancy = 1.0 - min(1.0, (agent.contacts_in_hand + taken) / total_capacity)
    else:
        occupancy = 0.0
    if contact.last_agent_id is not None and agent.id == contact.last_agent_id:
        affinity = 1.0
    elif agent.id in contact.known_agent_ids:
        affinity = 0.5
    else:
        affinity = 0.0
    total = (
        weights.proficiency * proficiency
        + weights.idle * idle
        + weights.occupancy * occupancy
        + weights.affinity * affinity
    )
    return Score(total, proficiency, idle, occupancy, affinity)


def preference(agent: Agent, agent_score: Score) -> tuple[float, float, str]:
    """Sort key among eligible agents: score, then longest idle, then id (reversed so
    that ``max`` picks the smallest id on a full tie)."""
    return (round(agent_score.total, 9), -agent.idle_since, reversed_id(agent.id))


@lru_cache(maxsize=65_536)
def reversed_id(text: str) -> str:
    """The id's part of the preference key: code points inverted so that ``max`` prefers
    "a" to "b" (an id that extends another still sorts after it: "ab" beats "a")."""
    return "".join(chr(0x10FFFF - ord(ch)) for ch in text)
