"""Hypothesis strategies shared by the core tests: skills, agents, contacts, rules."""

from __future__ import annotations

from hypothesis import strategies as st

from router.domain import Agent, AgentId, AgentState, Channel, Contact, ContactId
from router.rules import RelaxationStep, Rule, Weights

SKILLS = ("billing", "tech", "sales", "lang.fr")
CHANNELS = (Channel.VOICE, Channel.CHAT, Channel.EMAIL)
NOW = 1_000_000.0

levels = st.integers(min_value=1, max_value=5)
skill_maps = st.dictionaries(st.sampled_from(SKILLS), levels, max_size=len(SKILLS))
capacities = st.fixed_dictionaries({ch: st.integers(0, 3) for ch in CHANNELS})


@st.composite
def agents(draw: st.DrawFn, agent_id: str | None = None) -> Agent:
    """An agent with some skills, capacity, load not above capacity, any state."""
    capacity = draw(capacities)
    load = {ch: draw(st.integers(0, n)) for ch, n in capacity.items()}
    return Agent(
        id=AgentId(agent_id or draw(st.from_regex(r"a[0-9]{1,3}", fullmatch=True))),
        skills=draw(skill_maps),
        capacity=capacity,
        load=load,
        state=draw(st.sampled_from(AgentState)),
        idle_since=NOW - draw(st.floats(0, 3600)),
    )


@st.composite
def floors(draw: st.DrawFn, max_agents: int = 8) -> list[Agent]:
    """Agents with distinct ids."""
    n = draw(st.integers(0, max_agents))
    return [draw(agents(f"a{i}")) for i in range(n)]


@st.composite
def contacts(draw: st.DrawFn, contact_id: str = "c") -> Contact:
    return Contact(
        id=ContactId(contact_id),
        channel=draw(st.sampled_from(CHANNELS)),
        issue=draw(st.sampled_from(("billing", "tech", "sales"))),
        arrived_at=NOW - draw(st.floats(0, 600)),
        priority=draw(st.integers(0, 9)),
    )


@st.composite
def contact_lists(draw: st.DrawFn, max_size: int = 10) -> list[Contact]:
    n = draw(st.integers(0, max_size))
    return [draw(contacts(f"c{i}")) for i in range(n)]


@st.composite
def lowering_rules(draw: st.DrawFn) -> Rule:
    """A valid rule whose relaxation steps only lower (or drop) required levels."""
    skills = draw(st.dictionaries(st.sampled_from(SKILLS), st.integers(2, 5), min_size=1))
    steps: list[RelaxationStep] = []
    current = dict(skills)
    after = 0.0
    for _ in range(draw(st.integers(0, 3))):
        if not current:
            break
        skill = draw(st.sampled_from(sorted(current)))
        level = draw(st.integers(0, current[skill] - 1))
        after += draw(st.floats(1, 120))
        steps.append(RelaxationStep(after, {skill: level}))
        if level == 0:
            del current[skill]
        else:
            current[skill] = level
    return Rule(issue="billing", skills=skills, steps=tuple(steps), weights=Weights())
