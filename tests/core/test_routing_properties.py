"""Properties of the pure core: eligibility, relaxation, rule validation, scoring weights,
assignment and the Floor index."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.assign import Floor, assign, queue_rank, rule_for
from router.domain import Agent, AgentId, AgentState, Channel, Contact, ContactId
from router.errors import InvalidArgument
from router.rules import RelaxationStep, Rule, RuleBook, Weights, default_rule, validate_rule
from router.scoring import eligible, score
from tests.strategies import NOW, agents, contact_lists, contacts, floors, lowering_rules

RULES = RuleBook([default_rule("billing"), default_rule("tech"), default_rule("sales")])


# --- eligibility and relaxation -------------------------------------------------------------


@given(agent=agents(), contact=contacts(), rule=lowering_rules())
def test_eligible_means_available_free_slot_and_every_required_skill(
    agent: Agent, contact: Contact, rule: Rule
) -> None:
    required = rule.requirements(contact, NOW)
    expected = (
        agent.state is AgentState.AVAILABLE
        and agent.capacity.get(contact.channel, 0) > agent.load.get(contact.channel, 0)
        and all(agent.skills.get(s, 0) >= lvl for s, lvl in required.items())
    )
    assert eligible(agent, contact, required) == expected


@given(agent=agents(), contact=contacts(), rule=lowering_rules(), extra_s=st.floats(0, 1000))
def test_a_longer_wait_never_makes_an_agent_ineligible(
    agent: Agent, contact: Contact, rule: Rule, extra_s: float
) -> None:
    if eligible(agent, contact, rule.requirements(contact, NOW)):
        assert eligible(agent, contact, rule.requirements(contact, NOW + extra_s))


def test_required_at_follows_the_steps_and_level_0_drops_a_skill() -> None:
    rule = Rule(
        issue="billing",
        skills={"billing": 4, "lang.fr": 2},
        steps=(
            RelaxationStep(30, {"billing": 2}),
            RelaxationStep(90, {"billing": 1, "lang.fr": 0}),
        ),
    )
    validate_rule(rule)
    assert rule.required_at(0) == {"billing": 4, "lang.fr": 2}
    assert rule.required_at(29.9) == {"billing": 4, "lang.fr": 2}
    assert rule.required_at(30) == {"billing": 2, "lang.fr": 2}
    assert rule.required_at(500) == {"billing": 1}
    assert [rule.step_at(w) for w in (0, 30, 89, 90)] == [-1, 0, 0, 1]


# --- rule validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        (Rule(issue="Billing", skills={"x": 1}), "rule.issue"),
        (Rule(issue="", skills={"x": 1}), "rule.issue"),
        (Rule(issue="billing", skills={}), "rule.skills"),
        (Rule(issue="billing", skills={"Bad Name": 1}), "rule.skills['Bad Name']"),
        (Rule(issue="billing", skills={"x": 0}), "rule.skills['x']"),
        (Rule(issue="billing", skills={"x": 6}), "rule.skills['x']"),
        (Rule(issue="billing", skills={"x": 9}), "rule.skills['x']"),
        (
            Rule(issue="billing", skills={"x": 3}, steps=(RelaxationStep(10, {"x": 9}),)),
            "rule.steps[0].skills['x']",
        ),
        (
            Rule(
                issue="billing",
                skills={"x": 3},
                steps=(RelaxationStep(60, {"x": 2}), RelaxationStep(30, {"x": 1})),
            ),
            "rule.steps[1].after",
        ),
        (
            Rule(
                issue="billing",
                skills={"x": 3},
                steps=(RelaxationStep(30, {"x": 2}), RelaxationStep(30, {"x": 1})),
            ),
            "rule.steps[1].after",
        ),
        (
            Rule(
                issue="billing",
                skills={"x": 3},
                steps=(RelaxationStep(30, {"x": 2}), RelaxationStep(60, {"x": 2})),
            ),
            "rule.steps[1]",
        ),
        (
            Rule(issue="billing", skills={"x": 3}, steps=(RelaxationStep(30, {"x": 3}),)),
            "rule.steps[0]",
        ),
        (Rule(issue="billing", skills={"x": 3}, weights=Weights(idle=-1)), "rule.weights.idle"),
    ],
)
def test_invalid_rules_are_refused_naming_the_field(rule: Rule, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_rule(rule)
    assert info.value.field == field


@given(rule=lowering_rules())
def test_rules_whose_steps_lower_levels_are_valid(rule: Rule) -> None:
    assert validate_rule(rule) is rule


# --- scoring ------------------------------------------------------------------------------------


def _agent(agent_id: str, level: int, idle_s: float) -> Agent:
    return Agent(
        AgentId(agent_id),
        skills={"billing": level},
        capacity={Channel.CHAT: 3},
        state=AgentState.AVAILABLE,
        idle_since=NOW - idle_s,
    )


def _winner(rule: Rule, agents_: list[Agent], contact: Contact) -> AgentId:
    decisions = assign([contact], Floor(agents_), RuleBook([rule]), NOW)
    return decisions[0].agent.id


CONTACT = Contact(ContactId("c"), Channel.CHAT, "billing", NOW - 1)


def test_higher_proficiency_wins_when_the_proficiency_weight_dominates() -> None:
    rule = Rule("billing", {"billing": 1}, weights=Weights(proficiency=10, idle=0.1))
    agents_ = [_agent("expert", 5, 10), _agent("novice", 1, 3000)]
    assert _winner(rule, agents_, CONTACT) == "expert"


def test_longest_idle_wins_when_the_idle_weight_dominates() -> None:
    rule = Rule("billing", {"billing": 1}, weights=Weights(proficiency=0.1, idle=10))
    agents_ = [_agent("expert", 5, 10), _agent("novice", 1, 3000)]
    assert _winner(rule, agents_, CONTACT) == "novice"


def test_affinity_prefers_the_agent_who_last_handled_the_issue() -> None:
    rule = Rule("billing", {"billing": 1})
    agents_ = [_agent("expert", 5, 600), _agent("last", 1, 0)]
    sticky = replace(CONTACT, last_agent_id=AgentId("last"))
    assert _winner(rule, agents_, CONTACT) == "expert"
    assert _winner(rule, agents_, sticky) == "last"
    components = score(agents_[1], sticky, {"billing": 1}, rule.weights, NOW)
    assert components.affinity == 1.0


@given(agent=agents(), contact=contacts())
def test_score_components_are_normalised(agent: Agent, contact: Contact) -> None:
    s = score(agent, contact, {"billing": 1}, Weights(), NOW)
    for value in s.components().values():
        assert 0.0 <= value <= 1.0


# --- assign -------------------------------------------------------------------------------------


@settings(max_examples=150)
@given(agents_=floors(), contacts_=contact_lists())
def test_assign_never_exceeds_free_slots_and_every_decision_is_eligible(
    agents_: list[Agent], contacts_: list[Contact]
) -> None:
    floor = Floor(agents_)
    decisions = assign(contacts_, floor, RULES, NOW)
    given_out = Counter((d.agent.id, d.contact.channel) for d in decisions)
    for (agent_id, channel), n in given_out.items():
        agent = floor.get(agent_id)
        assert agent is not None
        assert n <= agent.free_slots(channel)
    for d in decisions:
        rule = rule_for(RULES, d.contact.issue)
        assert eligible(d.agent, d.contact, rule.requirements(d.contact, NOW))
    assert len({d.contact.id for d in decisions}) == len(decisions)


@settings(max_examples=150)
@given(agents_=floors(), contacts_=contact_lists())
def test_assign_serves_contacts_in_queue_order_and_is_deterministic(
    agents_: list[Agent], contacts_: list[Contact]
) -> None:
    decisions = assign(contacts_, Floor(agents_), RULES, NOW)
    ranks = [queue_rank(d.contact, rule_for(RULES, d.contact.issue)) for d in decisions]
    assert ranks == sorted(ranks)
    again = assign(list(reversed(contacts_)), Floor(list(reversed(agents_))), RULES, NOW)
    assert [(d.contact.id, d.agent.id) for d in again] == [
        (d.contact.id, d.agent.id) for d in decisions
    ]


def test_higher_priority_is_served_first_then_nearest_to_breach() -> None:
    agent = _agent("a1", 3, 10)
    old_email = Contact(ContactId("email"), Channel.EMAIL, "billing", NOW - 600)
    new_voice = Contact(ContactId("voice"), Channel.VOICE, "billing", NOW - 1)
    urgent = Contact(ContactId("urgent"), Channel.EMAIL, "billing", NOW, priority=5)
    rule = default_rule("billing")
    ranked = sorted([old_email, new_voice, urgent], key=lambda c: queue_rank(c, rule))
    assert [c.id for c in ranked] == ["urgent", "voice", "email"]
    one_slot = replace(agent, capacity={Channel.CHAT: 1})
    assert assign([old_email], Floor([one_slot]), RULES, NOW) == []


@given(agents_=floors(max_agents=5), contact=contacts())
def test_agents_who_declined_come_last(agents_: list[Agent], contact: Contact) -> None:
    floor = Floor(agents_)
    (first, *_) = assign([contact], floor, RULES, NOW) or [None]
    if first is None:
        return
    declined = replace(contact, declined_by=(first.agent.id,))
    (second,) = assign([declined], floor, RULES, NOW)
    if first.eligible > 1:
        assert second.agent.id != first.agent.id
    else:
        assert second.agent.id == first.agent.id


# --- Floor --------------------------------------------------------------------------------------


@given(
    agents_=floors(),
    ops=st.lists(
        st.tuples(
            st.sampled_from(["put", "remove", "reserve", "release"]),
            st.integers(0, 9),
            st.sampled_from([Channel.VOICE, Channel.CHAT, Channel.EMAIL]),
            agents(),
        ),
        max_size=25,
    ),
)
def test_floor_index_stays_consistent_after_put_remove_reserve_release(
    agents_: list[Agent], ops: list[tuple[str, int, Channel, Agent]]
) -> None:
    floor = Floor(agents_)
    for op, n, channel, template in ops:
        agent_id = AgentId(f"a{n}")
        if op == "put":
            floor.put(replace(template, id=agent_id))
        elif op == "remove":
            floor.remove(agent_id)
        elif op == "reserve" and floor.get(agent_id) is not None:
            floor.reserve(agent_id, channel, NOW)
        elif op == "release":
            floor.release(agent_id, channel)
    everyone = list(floor)
    assert floor.available_count == sum(a.is_available for a in everyone)
    for required in ({}, {"billing": 1}, {"billing": 1, "tech": 1}, {"lang.fr": 3}):
        expected = sorted(
            a.id for a in everyone if a.is_available and all(s in a.skills for s in required)
        )
        assert [a.id for a in floor.candidates(required)] == expected
