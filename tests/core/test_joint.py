"""Joint assignment (`router.joint`): optimal against brute force and against scipy's
Hungarian method, within capacity, priority first, and better than greedy where it can be."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from router.assign import Decision, Floor, assign, pick_agent, rule_for
from router.domain import Agent, AgentId, AgentState, Channel, Contact, ContactId
from router.joint import joint_assign
from router.rules import RelaxationStep, Rule, RuleBook, Weights
from router.scoring import eligible, score

NOW = 10_000.0
SKILLS = ("billing", "tech")
CHANNELS = (Channel.VOICE, Channel.CHAT)
RULES = RuleBook(
    [
        Rule("billing", {"billing": 1}, weights=Weights(proficiency=1.0, idle=0.3)),
        # Limited to one agent group, widened to another after 50 s (contacts here have
        # waited 0-100 s): the joint model must honour groups exactly as pick_agent does.
        Rule(
            "tech",
            {"tech": 2},
            weights=Weights(proficiency=2.0, occupancy=1.0),
            agent_groups=frozenset({"tier2"}),
            steps=(RelaxationStep(50.0, {}, add_groups=frozenset({"overflow"})),),
        ),
    ]
)
GROUPS = ("tier2", "overflow")


@st.composite
def agents_st(draw: st.DrawFn) -> list[Agent]:
    agents = []
    for k in range(draw(st.integers(1, 5))):
        skills = {s: lv for s in SKILLS if (lv := draw(st.integers(0, 5)))}
        capacity = {ch: draw(st.integers(0, 2)) for ch in CHANNELS}
        agents.append(
            Agent(
                id=AgentId(f"a{k}"),
                skills=skills,
                capacity=capacity,
                load={Channel.CHAT: draw(st.integers(0, 1))},
                state=AgentState.AVAILABLE if draw(st.integers(0, 5)) else AgentState.AWAY,
                idle_since=NOW - draw(st.sampled_from([0.0, 60.0, 300.0, 900.0])),
                groups=frozenset(draw(st.sets(st.sampled_from(GROUPS), max_size=2))),
            )
        )
    return agents


@st.composite
def contacts_st(draw: st.DrawFn, n_agents: int) -> list[Contact]:
    ids = [AgentId(f"a{k}") for k in range(n_agents)]
    maybe_agent = st.none() | st.sampled_from(ids)
    return [
        Contact(
            id=ContactId(f"c{k}"),
            channel=draw(st.sampled_from(CHANNELS)),
            issue=draw(st.sampled_from(SKILLS)),
            arrived_at=NOW - draw(st.integers(0, 100)),
            priority=draw(st.integers(0, 2)),
            last_agent_id=draw(maybe_agent),
            declined_by=tuple(draw(st.lists(st.sampled_from(ids), max_size=1))),
        )
        for k in range(draw(st.integers(1, 5)))
    ]


def _objective(
    assignment: Sequence[tuple[Contact, Agent]],
) -> tuple[int, int, float]:
    """(served, -declined agents used, total score): what the joint pass maximises."""
    total = 0.0
    declined = 0
    for contact, agent in assignment:
        rule = rule_for(RULES, contact.issue)
        total += score(agent, contact, rule.requirements(contact, NOW), rule.weights, NOW).total
        declined += agent.id in contact.declined_by
    return (len(assignment), -declined, total)


def _brute_force(
    contacts: Sequence[Contact], agents: Sequence[Agent], used: Counter[tuple[AgentId, Channel]]
) -> tuple[int, int, float]:
    """Best objective over every assignment of `contacts`, given slots already `used`."""
    options = []
    for contact in contacts:
        required = rule_for(RULES, contact.issue).requirements(contact, NOW)
        ok = [a for a in agents if eligible(a, contact, required)]
        options.append([None, *ok])
    best = (0, 0, 0.0)
    for choice in itertools.product(*options):
        taken = Counter(used)
        pairs = []
        for contact, agent in zip(contacts, choice, strict=True):
            if agent is not None:
                taken[(agent.id, contact.channel)] += 1
                pairs.append((contact, agent))
        agents_by_id = {a.id: a for a in agents}
        if all(agents_by_id[a].free_slots(ch) >= k for (a, ch), k in taken.items()):
            best = max(best, _objective(pairs))
    return best


def _assert_same(found: tuple[int, int, float], best: tuple[int, int, float]) -> None:
    assert found[:2] == best[:2]
    assert found[2] == pytest.approx(best[2], abs=1e-5)


def _pairs(decisions: Sequence[Decision]) -> list[tuple[Contact, Agent]]:
    return [(d.contact, d.agent) for d in decisions]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_joint_equals_brute_force_optimum_on_tiny_cases(data: st.DataObject) -> None:
    agents = data.draw(agents_st())
    contacts = data.draw(contacts_st(len(agents)))
    decisions = joint_assign(contacts, Floor(agents), RULES, NOW, priority_first=False)
    _assert_same(_objective(_pairs(decisions)), _brute_force(contacts, agents, Counter()))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_each_priority_class_is_optimal_given_the_classes_above(data: st.DataObject) -> None:
    agents = data.draw(agents_st())
    contacts = data.draw(contacts_st(len(agents)))
    decisions = joint_assign(contacts, Floor(agents), RULES, NOW)
    used: Counter[tuple[AgentId, Channel]] = Counter()
    for priority in sorted({c.priority for c in contacts}, reverse=True):
        members = [c for c in contacts if c.priority == priority]
        mine = [d for d in decisions if d.contact.priority == priority]
        _assert_same(_objective(_pairs(mine)), _brute_force(members, agents, used))
        used.update((d.agent.id, d.contact.channel) for d in mine)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_capacity_is_never_exceeded_and_every_pair_is_eligible(data: st.DataObject) -> None:
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    agents, contacts, rules = _instance(rng, data.draw(st.integers(2, 40)), 25, unit=False)
    decisions = joint_assign(contacts, Floor(agents), rules, NOW)
    slots = Counter((d.agent.id, d.contact.channel) for d in decisions)
    assert all(a.free_slots(ch) >= k for a in agents for (i, ch), k in slots.items() if i == a.id)
    assert len({d.contact.id for d in decisions}) == len(decisions)
    for d in decisions:
        assert eligible(d.agent, d.contact, d.required)
        rule = rule_for(rules, d.contact.issue)
        assert d.score == score(d.agent, d.contact, d.required, rule.weights, NOW)
        if d.runner_up is not None:
            other = next(a for a in agents if a.id == d.runner_up[0])
            assert d.runner_up[1] == score(other, d.contact, d.required, rule.weights, NOW)


def test_joint_beats_greedy_when_the_first_contact_takes_the_only_agent_of_the_second() -> None:
    billing = Rule("billing", {"billing": 1})
    tech = Rule("tech", {"tech": 1})
    rules = RuleBook([billing, tech])
    one = _agent("a1", {"billing": 5, "tech": 1})
    two = _agent("a2", {"billing": 3})
    first = Contact(ContactId("A"), Channel.VOICE, "billing", arrived_at=NOW - 50)
    second = Contact(ContactId("B"), Channel.VOICE, "tech", arrived_at=NOW - 10)
    floor = Floor([one, two])
    greedy = {d.contact.id: d.agent.id for d in assign([first, second], floor, rules, NOW)}
    joint = {d.contact.id: d.agent.id for d in joint_assign([first, second], floor, rules, NOW)}
    assert greedy == {"A": "a1"}
    assert joint == {"A": "a2", "B": "a1"}


def test_higher_priority_keeps_its_agent_even_if_a_lower_one_would_score_more() -> None:
    rules = RuleBook([Rule("billing", {"billing": 1})])
    agent = _agent("a1", {"billing": 5})
    vip = Contact(ContactId("vip"), Channel.VOICE, "billing", arrived_at=NOW, priority=5)
    regular = Contact(
        ContactId("reg"), Channel.VOICE, "billing", arrived_at=NOW - 100, last_agent_id=agent.id
    )
    joint = joint_assign([regular, vip], Floor([agent]), rules, NOW)
    assert [(d.contact.id, d.agent.id) for d in joint] == [("vip", "a1")]
    flat = joint_assign([regular, vip], Floor([agent]), rules, NOW, priority_first=False)
    assert [(d.contact.id, d.agent.id) for d in flat] == [("reg", "a1")]


def test_one_contact_gets_what_pick_agent_gives_it() -> None:
    rng = random.Random(7)
    agents, contacts, rules = _instance(rng, 1, 50, unit=False)
    floor = Floor(agents)
    expected = pick_agent(contacts[0], floor, rule_for(rules, contacts[0].issue), NOW)
    assert joint_assign(contacts, floor, rules, NOW) == [expected]


def test_equal_scores_go_to_the_agent_idle_longest_then_smallest_id() -> None:
    rules = RuleBook([Rule("billing", {"billing": 1}, weights=Weights(idle=0.0))])
    agents = [_agent(name, {"billing": 3}, idle_since=NOW - idle) for name, idle in
              [("a3", 500.0), ("a1", 100.0), ("a2", 500.0)]]  # fmt: skip
    contacts = [Contact(ContactId(f"c{k}"), Channel.VOICE, "billing", NOW) for k in range(2)]
    chosen = {d.agent.id for d in joint_assign(contacts, Floor(agents), rules, NOW)}
    assert chosen == {"a2", "a3"}


@pytest.mark.parametrize(("n_contacts", "n_agents"), [(200, 2000), (1000, 10000)])
def test_joint_equals_scipy_hungarian_on_unit_capacity_cases(
    n_contacts: int, n_agents: int
) -> None:
    rng = random.Random(n_contacts)
    agents, contacts, rules = _instance(rng, n_contacts, n_agents, unit=True)
    matrix = _score_matrix(agents, contacts, rules)
    assert 0.25 < np.isnan(matrix).mean() < 0.35
    rows, cols = linear_sum_assignment(np.nan_to_num(-matrix, nan=1e6))
    assert not np.isnan(matrix[rows, cols]).any()
    decisions = joint_assign(contacts, Floor(agents), rules, NOW)
    assert len(decisions) == n_contacts
    joint_total = sum(d.score.total for d in decisions)
    assert joint_total == pytest.approx(matrix[rows, cols].sum(), abs=n_contacts * 1e-6)


def _agent(name: str, skills: dict[str, int], idle_since: float = NOW - 60) -> Agent:
    return Agent(
        id=AgentId(name),
        skills=skills,
        capacity={Channel.VOICE: 1},
        state=AgentState.AVAILABLE,
        idle_since=idle_since,
    )


def _instance(
    rng: random.Random, n_contacts: int, n_agents: int, *, unit: bool
) -> tuple[list[Agent], list[Contact], RuleBook]:
    """Random floor: 12 skills, one rule per pair of skills with random weights; each agent
    holds each skill with probability 0.837, so about 30% of pairs are ineligible."""
    skills = [f"s{k}" for k in range(12)]
    rules = [
        Rule(
            f"{a}_{b}",
            {a: 1, b: 1},
            weights=Weights(rng.uniform(0.5, 2), rng.uniform(0, 1), rng.uniform(0, 1)),
        )
        for a, b in itertools.combinations(skills, 2)
    ]
    channels = [Channel.VOICE] if unit else [Channel.VOICE, Channel.CHAT, Channel.EMAIL]
    agents = [
        Agent(
            id=AgentId(f"ag{k:05d}"),
            skills={s: rng.randint(1, 5) for s in skills if rng.random() < 0.837},
            capacity={Channel.VOICE: 1, Channel.CHAT: rng.randint(1, 3), Channel.EMAIL: 3},
            load={Channel.EMAIL: rng.randint(0, 3)},
            state=AgentState.AVAILABLE,
            idle_since=NOW - rng.uniform(0, 1200),
        )
        for k in range(n_agents)
    ]
    contacts = [
        Contact(
            id=ContactId(f"c{k:05d}"),
            channel=rng.choice(channels),
            issue=rng.choice(rules).issue,
            arrived_at=NOW - rng.uniform(0, 60),
            priority=rng.choice([0, 0, 0, 1]) if not unit else 0,
            last_agent_id=rng.choice(agents).id if rng.random() < 0.2 else None,
        )
        for k in range(n_contacts)
    ]
    return agents, contacts, RuleBook(rules)


def _score_matrix(
    agents: Sequence[Agent], contacts: Sequence[Contact], rules: RuleBook
) -> np.ndarray:
    """Scores of every pair, NaN where ineligible; spot-checked against `score`."""
    matrix = np.full((len(contacts), len(agents)), np.nan)
    index = {a.id: j for j, a in enumerate(agents)}
    idle = np.array([NOW - a.idle_since for a in agents])
    occupancy = np.array([1.0 - min(1.0, a.contacts_in_hand / sum(a.capacity.values()))
                          for a in agents])  # fmt: skip
    skills = {s for rule in rules for s in rule.skills}
    column = {s: np.array([a.skills.get(s, 0) for a in agents]) for s in skills}
    for i, contact in enumerate(contacts):
        rule = rule_for(rules, contact.issue)
        w = rule.weights
        levels = np.stack([column[s] for s in rule.skills], axis=1)
        ok = (levels >= 1).all(axis=1)
        prof = np.minimum(levels, 5).sum(axis=1) / (5 * len(rule.skills))
        row = w.proficiency * prof + w.idle * np.minimum(1.0, idle / w.idle_horizon_s)
        row = row + w.occupancy * occupancy
        if contact.last_agent_id is not None:
            row[index[contact.last_agent_id]] += w.affinity
        matrix[i] = np.where(ok, row, np.nan)
    rng = random.Random(0)
    for _ in range(200):
        i, j = rng.randrange(len(contacts)), rng.randrange(len(agents))
        rule = rule_for(rules, contacts[i].issue)
        required = rule.requirements(contacts[i], NOW)
        if eligible(agents[j], contacts[i], required):
            expected = score(agents[j], contacts[i], required, rule.weights, NOW).total
            assert matrix[i, j] == pytest.approx(expected, abs=1e-12)
        else:
            assert np.isnan(matrix[i, j])
    return matrix


def test_a_pass_reads_the_floor_as_it_is_after_skills_and_agents_change() -> None:
    """The joint pass keeps a table of the floor's skills between passes: a change of
    skills, an agent leaving or joining is seen by the very next pass."""
    rules = RuleBook([Rule("billing", {"billing": 3})])
    contacts = [Contact(ContactId(f"c{k}"), Channel.VOICE, "billing", NOW - 10 * k) for k in (1, 2)]
    floor = Floor([_agent("a1", {"billing": 4}), _agent("a2", {"billing": 1})])

    def chosen() -> list[str]:
        return [d.agent.id for d in joint_assign(contacts, floor, rules, NOW)]

    assert chosen() == ["a1"]
    floor.put(_agent("a1", {"billing": 1}))
    floor.put(_agent("a2", {"billing": 4}))
    assert chosen() == ["a2"]
    floor.remove(AgentId("a2"))
    assert chosen() == []
    floor.put(_agent("a3", {"billing": 5, "tech": 2}))
    assert chosen() == ["a3"]
    floor.put(_agent("a1", {"billing": 5}))
    assert sorted(chosen()) == ["a1", "a3"]
