"""Issue 9 in the pure core: relaxation steps that add skills and trigger on queue state,
history affinity with a bounded wait, repeat contacts, joint passes, explanations, and the
effect of each agent-selection weight."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from router.affinity import KNOWN, LAST, hold_for
from router.assign import Floor, pick_agent
from router.domain import (
    Agent,
    AgentId,
    AgentState,
    Channel,
    Contact,
    ContactId,
    QueueSignals,
)
from router.errors import InvalidArgument
from router.explain import explanation, render
from router.history import CHANNEL_SWITCH, UNRESOLVED, history_facts, repeat_counters, shaped
from router.policy import JointMode, decide
from router.queue_signals import measure
from router.rules import RelaxationStep, Rule, RuleBook, Weights, validate_rule

NOW = 100_000.0
VOICE, CHAT = Channel.VOICE, Channel.CHAT


def agent(
    name: str,
    skills: dict[str, int],
    *,
    load: int = 0,
    chat_load: int = 0,
    idle_s: float = 0.0,
    state: AgentState = AgentState.AVAILABLE,
) -> Agent:
    return Agent(
        id=AgentId(name),
        skills=skills,
        capacity={VOICE: 1, CHAT: 2},
        load={VOICE: load, CHAT: chat_load},
        state=state,
        idle_since=NOW - idle_s,
    )


def contact(name: str, issue: str = "billing", waited_s: float = 0.0, **kw: object) -> Contact:
    return Contact(ContactId(name), kw.pop("channel", VOICE), issue, NOW - waited_s, **kw)  # type: ignore[arg-type]


# --- relaxation steps --------------------------------------------------------------------


def test_a_step_can_add_a_skill_after_a_wait_and_raise_or_lower_levels() -> None:
    rule = validate_rule(
        Rule(
            "vip",
            {"billing": 3},
            steps=(
                RelaxationStep(30, {"billing": 2}),
                RelaxationStep(120, {"senior": 1, "billing": 4}),
            ),
        )
    )
    assert rule.required_at(10) == {"billing": 3}
    assert rule.required_at(60) == {"billing": 2}
    assert rule.required_at(150) == {"billing": 4, "senior": 1}


def test_queue_state_steps_apply_only_while_their_condition_holds() -> None:
    rule = validate_rule(
        Rule(
            "billing",
            {"billing": 3},
            steps=(
                RelaxationStep(0, {"billing": 1}, eligible_at_most=0),
                RelaxationStep(10, {"billing": 2}, expected_wait_over_s=120),
                RelaxationStep(10, {"lang.en": 0, "billing": 2}, service_level_below=0.8),
            ),
        )
    )
    assert rule.required_at(60) == {"billing": 3}  # no signals: only time-only steps
    assert rule.required_at(60, QueueSignals(eligible_agents=0)) == {"billing": 1}
    assert rule.required_at(60, QueueSignals(eligible_agents=2)) == {"billing": 3}
    assert rule.required_at(5, QueueSignals(expected_wait_s=300)) == {"billing": 3}
    assert rule.required_at(60, QueueSignals(expected_wait_s=300)) == {"billing": 2}
    assert rule.required_at(60, QueueSignals(service_level=0.5)) == {"billing": 2}
    assert rule.steps_in_force(60, QueueSignals(service_level=0.9, eligible_agents=0)) == [0]


def test_a_rule_routes_to_its_groups_then_a_step_widens_to_another_group() -> None:
    """Billing goes to the billing team; after 2 minutes the overflow site may take it too.
    Agents in no group (or another) never take it, however skilled."""
    rule = validate_rule(
        Rule(
            "billing",
            {"billing": 2},
            agent_groups=frozenset({"billing-team"}),
            steps=(RelaxationStep(120, {}, add_groups=frozenset({"overflow"})),),
        )
    )
    team = replace(agent("team", {"billing": 2}, load=1), groups=frozenset({"billing-team"}))
    site = replace(agent("site", {"billing": 5}, idle_s=900), groups=frozenset({"overflow"}))
    loner = agent("loner", {"billing": 5}, idle_s=900)
    floor = Floor([team, site, loner])
    assert rule.required_at(0).groups == {"billing-team"}
    assert rule.required_at(130).groups == {"billing-team", "overflow"}
    assert pick_agent(contact("early", waited_s=30), floor, rule, NOW) is None  # team busy
    late = pick_agent(contact("late", waited_s=130), floor, rule, NOW)
    assert late is not None and late.agent.id == "site" and late.step == 0
    assert late.eligible == 1 and late.considered == 2  # loner holds the skill, not the group
    floor.put(replace(team, load={VOICE: 0, CHAT: 0}))
    early = pick_agent(contact("early", waited_s=30), floor, rule, NOW)
    assert early is not None and early.agent.id == "team"
    why = explanation(late, rule, floor, NOW)
    assert why["groups"] == ["billing-team", "overflow"]
    assert "group in billing-team|overflow" in why["summary"]
    assert "agent groups: billing-team, overflow" in render(why)
    # A rule without groups takes every agent, in a group or not.
    anyone = pick_agent(contact("any"), Floor([loner]), Rule("billing", {"billing": 1}), NOW)
    assert anyone is not None and anyone.agent.id == "loner"


def test_a_queue_state_step_widens_to_a_group_only_while_the_queue_needs_it() -> None:
    rule = validate_rule(
        Rule(
            "billing",
            {"billing": 1},
            agent_groups=frozenset({"billing-team"}),
            steps=(RelaxationStep(0, {}, add_groups=frozenset({"sales"}), eligible_at_most=0),),
        )
    )
    assert rule.required_at(60).groups == {"billing-team"}
    assert rule.required_at(60, QueueSignals(eligible_agents=0)).groups == {"billing-team", "sales"}
    assert rule.required_at(60, QueueSignals(eligible_agents=3)).groups == {"billing-team"}


@pytest.mark.parametrize(
    ("rule", "field", "reason"),
    [
        (
            Rule("b", {"b": 1}, steps=(RelaxationStep(30, {}, add_groups=frozenset({"x"})),)),
            "rule.steps[0].add_agent_groups",
            "can never apply: the rule names no agent_groups",
        ),
        (
            Rule(
                "b",
                {"b": 1},
                agent_groups=frozenset({"x"}),
                steps=(RelaxationStep(30, {}, add_groups=frozenset({"x"})),),
            ),
            "rule.steps[0]",
            "can never apply: it changes nothing",
        ),
        (
            Rule(
                "b",
                {"b": 1},
                agent_groups=frozenset({"x"}),
                steps=(
                    RelaxationStep(30, {}, add_groups=frozenset({"y"})),
                    RelaxationStep(60, {}, add_groups=frozenset({"y"})),
                ),
            ),
            "rule.steps[1]",
            "can never apply: it changes nothing",
        ),
        (Rule("b", {"b": 1}, agent_groups=frozenset({"Team A"})), "rule.agent_groups", "valid"),
        (
            Rule("b", {"b": 1}, agent_groups=frozenset({"x"}), steps=(RelaxationStep(30, {}),)),
            "rule.steps[0].skills",
            "at least one skill or add a group",
        ),
    ],
)
def test_a_group_step_that_can_never_apply_is_rejected_with_the_reason(
    rule: Rule, field: str, reason: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_rule(rule)
    assert info.value.field.startswith(field)
    assert reason in info.value.problem


@pytest.mark.parametrize(
    ("steps", "field"),
    [
        ((RelaxationStep(30, {"billing": 3}),), "rule.steps[0]"),  # changes nothing
        ((RelaxationStep(30, {"billing": 6}),), "rule.steps[0].skills['billing']"),
        ((RelaxationStep(30, {"x": 0}),), "rule.steps[0]"),  # drops a skill never required
        (
            (RelaxationStep(30, {"billing": 2}), RelaxationStep(30, {"billing": 1})),
            "rule.steps[1].after",
        ),
        ((RelaxationStep(0, {"billing": 1}, service_level_below=0.0),), "service_level_below"),
        ((RelaxationStep(0, {"billing": 1}, expected_wait_over_s=0.0),), "expected_wait_over"),
        ((RelaxationStep(0, {"billing": 1}, eligible_at_most=-1),), "eligible_agents_at_most"),
    ],
)
def test_a_step_that_can_never_apply_is_rejected_naming_the_field(
    steps: tuple[RelaxationStep, ...], field: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_rule(Rule("billing", {"billing": 3}, steps=steps))
    assert field in str(err.value)


def test_signals_measure_eligible_agents_service_level_and_expected_wait() -> None:
    rule = Rule(
        "billing", {"billing": 2}, steps=(RelaxationStep(0, {"billing": 1}, eligible_at_most=1),)
    )
    floor = Floor([agent("a1", {"billing": 3}, load=1), agent("a2", {"billing": 1})])
    stats = {
        "billing:voice:answered": "3",
        "billing:voice:in_target": "1",
        "billing:voice:abandoned": "1",
        "billing:voice:handled": "2",
        "billing:voice:handle_ms": "240000",
    }
    sig = measure(contact("c1"), rule, floor, {"billing:voice": 2}, stats, NOW)
    assert sig.eligible_agents == 1  # a2 lacks the level
    assert sig.service_level == pytest.approx(0.25)
    # 2 ahead + 1, no free slot, 1 slot, AHT 120 s: (2 + 1 - 0) x 120 / 1
    assert sig.expected_wait_s == pytest.approx(360.0)


# --- history -----------------------------------------------------------------------------


@dataclass(frozen=True)
class H:
    channel: Channel
    issue: str
    agent_id: str
    outcome: str
    status: str
    time_ms: int


RULE = Rule(
    "billing",
    {"billing": 1},
    affinity_wait_s=30,
    repeat_window_s=3600,
    repeat_priority_boost=3,
    repeat_min_proficiency=4,
)


def test_history_makes_repeat_contacts_unresolved_or_channel_switch() -> None:
    recent = int((NOW - 600) * 1000)
    unresolved = [H(VOICE, "billing", "a1", "unresolved", "completed", recent)]
    facts = history_facts(unresolved, contact("c", channel=CHAT), RULE, NOW)
    assert facts.repeat == UNRESOLVED and facts.last_agent_id == "a1"
    resolved_voice = [H(VOICE, "billing", "a1", "resolved", "completed", recent)]
    facts = history_facts(resolved_voice, contact("c", channel=CHAT), RULE, NOW)
    assert facts.repeat == CHANNEL_SWITCH
    assert repeat_counters(contact("c", channel=CHAT), facts) == {
        "billing:chat:repeat": 1,
        "billing:chat:switch": 1,
        "billing:voice:came_back": 1,
    }
    assert history_facts(resolved_voice, contact("c"), RULE, NOW).repeat == ""
    old = [H(VOICE, "billing", "a1", "unresolved", "completed", int((NOW - 7200) * 1000))]
    assert history_facts(old, contact("c"), RULE, NOW).repeat == ""
    abandoned = [H(CHAT, "billing", "", "", "abandoned", recent)]
    assert history_facts(abandoned, contact("c", channel=CHAT), RULE, NOW).repeat == UNRESOLVED


def test_a_repeat_contact_gets_the_priority_boost_and_proficiency_floor() -> None:
    recent = int((NOW - 60) * 1000)
    facts = history_facts(
        [H(VOICE, "billing", "a1", "unresolved", "completed", recent)], contact("c"), RULE, NOW
    )
    shaped_contact = shaped(contact("c", priority=8), facts, RULE)
    assert shaped_contact.priority == 9  # capped
    assert RULE.requirements(shaped_contact, NOW) == {"billing": 4}
    assert RULE.requirements(contact("c"), NOW) == {"billing": 1}


# --- affinity with a bounded wait ----------------------------------------------------------


def test_the_last_agent_holds_the_contact_within_the_bound_then_anyone_eligible() -> None:
    rules = RuleBook([RULE])
    busy_last = agent("a1", {"billing": 3}, load=1)
    floor = Floor([busy_last, agent("a2", {"billing": 3}, idle_s=500)])
    back = contact("c1", waited_s=10, last_agent_id=AgentId("a1"))
    hold = hold_for(back, RULE, floor, NOW)
    assert hold is not None and hold.kind == LAST and hold.agents == ("a1",)
    assert decide([back], floor, rules, NOW) == []  # a2 is free but withheld
    late = replace(back, arrived_at=NOW - 31)
    (routed,) = decide([late], floor, rules, NOW)
    assert routed.decision.agent.id == "a2" and routed.hold is None
    free_last = Floor([agent("a1", {"billing": 3}), agent("a2", {"billing": 5}, idle_s=900)])
    (routed,) = decide([back], free_last, rules, NOW)
    assert routed.decision.agent.id == "a1" and routed.hold is not None


def test_no_hold_when_the_last_agent_is_signed_out_then_known_agents_hold() -> None:
    floor = Floor(
        [
            agent("a1", {"billing": 3}, state=AgentState.SIGNED_OUT),
            agent("a3", {"billing": 3}, state=AgentState.AWAY),
        ]
    )
    back = contact("c1", waited_s=5, last_agent_id=AgentId("a1"))
    assert hold_for(back, RULE, floor, NOW) is None
    known = replace(back, known_agent_ids=(AgentId("a1"), AgentId("a3")))
    hold = hold_for(known, RULE, floor, NOW)
    assert hold is not None and hold.kind == KNOWN and hold.agents == ("a3",)
    declined = replace(known, declined_by=(AgentId("a3"),))
    assert hold_for(declined, RULE, floor, NOW) is None


# --- joint passes and explanations --------------------------------------------------------


def test_joint_pass_serves_both_where_greedy_serves_one_and_says_so() -> None:
    rules = RuleBook([Rule("billing", {"billing": 1}), Rule("tech", {"tech": 1})])
    # c1 (billing, first in queue) prefers a1, the only agent c2 (tech) can take.
    floor = Floor([agent("a1", {"billing": 5, "tech": 1}, idle_s=600), agent("a2", {"billing": 1})])
    contacts = [contact("c1", waited_s=5), contact("c2", "tech")]
    greedy = decide(contacts, floor, rules, NOW, JointMode.OFF)
    assert [(r.decision.contact.id, r.joint) for r in greedy] == [("c1", False)]
    joint = decide(contacts, floor, rules, NOW, JointMode.AUTO)
    assert {(r.decision.contact.id, r.decision.agent.id) for r in joint} == {
        ("c1", "a2"),
        ("c2", "a1"),
    }
    assert all(r.joint for r in joint)
    why = explanation(joint[0].decision, rules.for_issue("billing"), floor, NOW, joint=True)  # type: ignore[arg-type]
    assert why["joint"] is True and why["agent"] == joint[0].decision.agent.id
    assert "joint" in render(why) and why["candidates"][0]["agent"] == why["agent"]


def test_explanation_lists_candidates_best_first_with_components_and_history() -> None:
    rule = Rule("billing", {"billing": 2}, steps=(RelaxationStep(30, {"billing": 1}),))
    floor = Floor([agent(f"a{i}", {"billing": 1 + i % 5}, idle_s=10 * i) for i in range(15)])
    c = contact("c1", waited_s=45, known_agent_ids=(AgentId("a3"),), repeat=UNRESOLVED)
    decision = pick_agent(c, floor, rule, NOW)
    assert decision is not None
    why = explanation(decision, rule, floor, NOW, top=10)
    assert len(why["candidates"]) == 10
    scores = [cand["score"] for cand in why["candidates"]]
    assert scores == sorted(scores, reverse=True)
    assert set(why["chosen"]["components"]) == {"proficiency", "idle", "occupancy", "affinity"}
    assert why["runner_up"] == why["candidates"][1]["agent"]
    assert why["steps"] == [0] and why["required"] == {"billing": 1}
    assert why["history"] == {"known_agents": "a3", "repeat": UNRESOLVED}
    assert "relaxation: step 0" in render(why)


# --- fairness: each weight does what it says ----------------------------------------------------


def _pick(weights: Weights, *agents: Agent, last: str | None = None) -> str:
    rule = Rule("billing", {"billing": 1}, weights=weights)
    c = contact("c1", last_agent_id=AgentId(last) if last else None)
    decision = pick_agent(c, Floor(agents), rule, NOW)
    assert decision is not None
    return decision.agent.id


ONLY = {"proficiency": 0.0, "idle": 0.0, "occupancy": 0.0, "affinity": 0.0}


@pytest.mark.parametrize(
    ("weight", "winner", "agents", "last"),
    [
        # Higher proficiency wins on proficiency weight, though the other idles longer.
        (
            "proficiency",
            "a1",
            [agent("a1", {"billing": 5}), agent("a2", {"billing": 1}, idle_s=500)],
            None,
        ),
        # Longer idle wins on idle weight, though the other is more proficient.
        (
            "idle",
            "a2",
            [agent("a1", {"billing": 5}, idle_s=10), agent("a2", {"billing": 1}, idle_s=500)],
            None,
        ),
        # More free capacity wins on occupancy weight.
        (
            "occupancy",
            "a2",
            [agent("a1", {"billing": 5}, idle_s=500, chat_load=2), agent("a2", {"billing": 1})],
            None,
        ),
        # The last agent wins on affinity weight.
        (
            "affinity",
            "a2",
            [agent("a1", {"billing": 5}, idle_s=500), agent("a2", {"billing": 1})],
            "a2",
        ),
    ],
)
def test_each_selection_weight_decides_when_it_is_the_only_one(
    weight: str, winner: str, agents: list[Agent], last: str | None
) -> None:
    weights = Weights(**{**ONLY, weight: 1.0})
    assert _pick(weights, *agents, last=last) == winner
    # ... and the other agent wins when that weight is off and another favours it.
    others = [w for w in ONLY if w != weight]
    flipped = {
        w: 1.0 for w in others if _pick(Weights(**{**ONLY, w: 1.0}), *agents, last=last) != winner
    }
    assert flipped, f"no other weight favours the other agent over {winner}"
    assert _pick(Weights(**{**ONLY, **flipped}), *agents, last=last) != winner


def test_a_decision_names_the_queue_state_step_in_force() -> None:
    """The decision (and so its explanation and the log) says which step decided, a step on
    queue state included: the step comes from the contact's signals as well as its wait."""
    rule = validate_rule(
        Rule(
            "billing",
            {"billing": 4},
            steps=(
                RelaxationStep(30, {"billing": 3}),
                RelaxationStep(30, {"billing": 1}, eligible_at_most=0),
            ),
        )
    )
    floor = Floor([agent("junior", {"billing": 1})])
    calm = pick_agent(contact("c1", waited_s=60), floor, rule, NOW)
    assert calm is None  # billing >= 3 after 60 s: nobody
    starved = contact("c1", waited_s=60, signals=QueueSignals(eligible_agents=0))
    decision = pick_agent(starved, floor, rule, NOW)
    assert decision is not None and decision.agent.id == "junior"
    assert decision.step == 1 and decision.relaxed
    assert explanation(decision, rule, floor, NOW)["steps"] == [0, 1]
