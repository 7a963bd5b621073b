"""Agent groups in the simulator: a rule routes to some groups only and a step widens it to
more after a wait, decided by the core (``has_skills`` with the rule's ``Requirements``)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from simulations.cli import EXAMPLES
from simulations.engine import simulate
from simulations.headline import silo_plan
from simulations.plan import Plan
from simulations.runlog import ANSWERED, BOT_ESCALATED, NO_BOT, RunLog
from simulations.scenario import load_scenario, parse_scenario
from simulations.yamlfields import ScenarioError

HANDLE_S = 240.0
THRESHOLD_S = 60.0
#: tier1 (2 people) is overloaded on its own (2 contacts a minute, 4 minutes each);
#: overflow (6 people) may take billing only once a contact has waited 60 s.
GROUPS = """\
name: overflow
seed: 4
replications: 1
horizon: 4h
interval: 1h
streams:
  - issue: billing
    channel: voice
    per_hour: 45
    handle: {dist: fixed, mean: 240}
rules:
  - issue: billing
    skills: {billing: 1}
    agent_groups: [tier1]
    steps:
      - {after: 60s, add_agent_groups: [overflow]}
agents:
  - group: tier1
    count: 2
    skills: {billing: 3}
    capacity: {voice: 1}
  - group: overflow
    count: 6
    skills: {billing: 3}
    capacity: {voice: 1}
"""
NO_STEP = GROUPS.replace("    steps:\n      - {after: 60s, add_agent_groups: [overflow]}\n", "")


def plan_of(text: str) -> Plan:
    return parse_scenario(text, "groups.yaml").plan


def answered_by(log: RunLog, group: str) -> list[int]:
    index = log.groups.index(group)
    return [row for row, g in enumerate(log.group) if g == index]


def test_overflow_answers_only_after_the_threshold_and_only_when_tier1_is_full() -> None:
    log = simulate(plan_of(GROUPS), seed=4)
    assert set(log.outcome) == {ANSWERED}
    tier1, overflow = answered_by(log, "tier1"), answered_by(log, "overflow")
    assert len(tier1) > 80 and len(overflow) > 20
    # Overflow waits out the threshold, and the threshold itself re-tries the contact (a
    # step that changes only groups still schedules its RELAX event): many are answered at
    # exactly 60 s, by an overflow agent idle since long before.
    assert min(log.wait_s[row] for row in overflow) >= THRESHOLD_S - 1e-6
    at_threshold = [row for row in overflow if log.wait_s[row] == pytest.approx(THRESHOLD_S)]
    assert len(at_threshold) > len(overflow) / 2
    # ... and takes none while tier1 has room: whenever it starts one, both tier1 agents
    # hold a contact (handle times are fixed, so tier1's load is known from the log).
    tier1_spans = [(log.arrived_s[r] + log.wait_s[r], HANDLE_S) for r in tier1]
    for row in overflow:
        t = log.arrived_s[row] + log.wait_s[row]
        busy = sum(1 for start, length in tier1_spans if start <= t < start + length)
        assert busy == 2, (row, t, busy)


def test_without_the_step_overflow_never_answers() -> None:
    log = simulate(plan_of(NO_STEP), seed=4)
    assert answered_by(log, "overflow") == []
    assert len(answered_by(log, "tier1")) > 80
    widened = simulate(plan_of(GROUPS), seed=4)
    assert widened.arrived_s == log.arrived_s  # the same customers (common random numbers)
    assert sum(widened.wait_s) < sum(log.wait_s) / 5


def test_a_rule_without_agent_groups_routes_to_every_group() -> None:
    text = NO_STEP.replace("    agent_groups: [tier1]\n", "")
    log = simulate(plan_of(text), seed=4)
    assert answered_by(log, "overflow") and answered_by(log, "tier1")


def test_silo_variant_routes_to_the_same_people() -> None:
    plan = replace(plan_of(GROUPS), horizon_s=3600.0)
    silos = silo_plan(plan)
    rule = silos.rule("billing")
    assert rule.agent_groups == {"tier1@voice"}
    assert rule.steps[0].add_groups == {"overflow@voice"}
    log = simulate(silos, seed=4)
    overflow = answered_by(log, "overflow@voice")
    assert overflow and min(log.wait_s[r] for r in overflow) >= THRESHOLD_S - 1e-6


BOTS = """\
name: bots
horizon: 2h
streams:
  - {issue: billing, channel: chat, per_hour: 30, handle: {dist: fixed, mean: 300}}
rules:
  - issue: billing
    skills: {billing: 1}
    agent_groups: [care]
    bot_first: true
    bot: {containment: 0.5, handle: {dist: fixed, mean: 60}}
agents:
  - {group: care, count: 4, skills: {billing: 2}, capacity: {chat: 2}}
  - {group: other, count: 4, skills: {billing: 2}, capacity: {chat: 2}}
  - {group: assistant, kind: bot, skills: {billing: 1}, capacity: {chat: 1}}
"""


def test_bots_ignore_agent_groups_as_live_and_escalations_go_to_the_groups() -> None:
    """``pick_bot`` checks skills only: the bot, in none of the rule's groups, takes every
    contact; what it escalates goes to the rule's groups only (care, never other)."""
    log = simulate(plan_of(BOTS), seed=2)
    assert NO_BOT not in log.bot and BOT_ESCALATED in log.bot
    assert answered_by(log, "care") and answered_by(log, "other") == []


TINY = """\
name: tiny
horizon: 1h
streams:
  - issue: billing
    channel: voice
    per_hour: 60
    handle: {dist: exponential, mean: 2m}
rules:
  - issue: billing
    skills: {billing: 1}
    agent_groups: [phones]
    steps:
      - {after: 30s, add_agent_groups: [backup]}
agents:
  - {group: phones, count: 3, skills: {billing: 2}, capacity: {voice: 1}}
  - {group: backup, count: 2, skills: {billing: 1}, capacity: {voice: 1}}
  - {group: chat, count: 2, skills: {sales: 1}, capacity: {chat: 1}}
  - {group: chat2, count: 2, skills: {billing: 1}, capacity: {chat: 1}}
  - {group: assistant, kind: bot, skills: {billing: 1}, capacity: {chat: 1}}
"""
STEP = "    steps:\n      - {after: 30s, add_agent_groups: [backup]}\n"


def test_a_group_only_step_parses_into_the_cores_rule() -> None:
    rule = parse_scenario(TINY).plan.rule("billing")
    assert rule.agent_groups == {"phones"}
    assert rule.steps[0].add_groups == {"backup"} and not rule.steps[0].min_proficiency
    assert rule.required_at(29.9).groups == {"phones"}
    assert rule.required_at(30.0).groups == {"phones", "backup"}


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        (
            "agent_groups: [phones]",
            "agent_groups: [phone]",
            "tiny.yaml:11: rules[0].agent_groups[0]: no agent is in group 'phone'; groups: "
            "backup, chat, chat2, phones",
        ),
        (
            "add_agent_groups: [backup]",
            "add_agent_groups: [backups]",
            "tiny.yaml:13: rules[0].steps[0].add_agent_groups[0]: no agent is in group",
        ),
        (  # bots ignore groups: naming a bot's group is a mistake
            "agent_groups: [phones]",
            "agent_groups: [phones, assistant]",
            "tiny.yaml:11: rules[0].agent_groups[1]: no agent is in group 'assistant' (a "
            "bot's: bots ignore agent groups)",
        ),
        (
            "    agent_groups: [phones]\n",
            "",
            "tiny.yaml:12: rules[0].steps[0].add_agent_groups: can never apply: the rule "
            "names no agent_groups",
        ),
        (
            "agent_groups: [phones]",
            "agent_groups: [Phones]",
            "tiny.yaml:11: rules[0].agent_groups[0]: 'Phones' is not a valid name",
        ),
        (
            "add_agent_groups: [backup]",
            "add_agent_groups: [back up]",
            "tiny.yaml:13: rules[0].steps[0].add_agent_groups[0]: 'back up' is not a valid",
        ),
        (
            "agent_groups: [phones]",
            "agent_groups: [phones, phones]",
            "tiny.yaml:11: rules[0].agent_groups[1]: group 'phones' given twice",
        ),
        (
            "agent_groups: [phones]",
            "agent_groups: []",
            "tiny.yaml:11: rules[0].agent_groups: must not be empty",
        ),
        (
            "agent_groups: [phones]",
            "agent_groups: phones",
            "tiny.yaml:11: rules[0].agent_groups: expected a list",
        ),
        (
            "{after: 30s, add_agent_groups: [backup]}",
            "{after: 30s}",
            "tiny.yaml:13: rules[0].steps[0].skills: a step must change at least one skill "
            "or add a group",
        ),
        (
            "add_agent_groups: [backup]",
            "add_agent_groups: [phones]",
            "tiny.yaml:13: rules[0].steps[0]: can never apply",
        ),
        (
            "add_agent_groups: [backup]",
            "add_agent_groups: [backup], skills: {billing: 2}",
            "tiny.yaml:13: rules[0].steps[0]: skills.billing: a relaxation step may only lower",
        ),
        (  # the groups reached, widening included, take no voice
            "agent_groups: [phones]\n" + STEP,
            "agent_groups: [chat]\n" + STEP.replace("[backup]", "[chat2]"),
            "tiny.yaml:4: streams[0]: no agent group can take 'billing' on voice (needs "
            "{'billing': 1}, in group chat or chat2 and voice capacity)",
        ),
    ],
)
def test_bad_group_input_names_line_and_field(old: str, new: str, where: str) -> None:
    assert old in TINY
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(TINY.replace(old, new), "tiny.yaml")
    assert str(caught.value).startswith(where), str(caught.value)


def test_coverage_counts_the_groups_a_step_widens_to() -> None:
    # Nobody in phones holds billing: only backup, reached after 30 s, can take it.
    text = TINY.replace(
        "{group: phones, count: 3, skills: {billing: 2}",
        "{group: phones, count: 3, skills: {sales: 2}",
    )
    rule = parse_scenario(text).plan.rule("billing")
    assert rule.required_at(math.inf).groups == {"phones", "backup"}
    with pytest.raises(ScenarioError, match=r"streams\[0\]: no agent group can take"):
        parse_scenario(text.replace(STEP, ""))


def test_the_example_sends_billing_to_the_outsourcer_only_after_45_s() -> None:
    scenario = load_scenario(EXAMPLES / "overflow_groups.yaml")
    plan = replace(scenario.plan, horizon_s=2 * 3600.0)
    log = simulate(plan, seed=scenario.seed)
    billing, outsourcer = log.issues.index("billing"), log.groups.index("outsourcer")
    waits = [
        w
        for issue, group, w in zip(log.issue, log.group, log.wait_s, strict=True)
        if issue == billing and group == outsourcer
    ]
    assert waits and min(waits) >= 45.0 - 1e-6
