"""Relaxation steps on queue state in the simulator: a step that waits for the expected wait,
the service level so far or the number of eligible agents applies only while its condition
holds, measured as the live service measures it (``router.queue_signals.measure``), and decided by
the core (``Rule.requirements`` with ``Contact.signals``)."""

from __future__ import annotations

import math

import pytest

from router.assign import pick_agent
from simulations.cli import EXAMPLES
from simulations.engine import Engine, simulate
from simulations.plan import Plan
from simulations.queue_state import QueueState
from simulations.runlog import ABANDONED, ANSWERED, RunLog
from simulations.scenario import load_scenario, parse_scenario
from simulations.yamlfields import ScenarioError

#: Billing needs level 3; six specialists fall short of 90 calls an hour at 4 minutes; three
#: juniors (level 1) may help only through the step given in STEP.
PLAN = """\
name: queue-state
seed: 3
replications: 1
horizon: 8h
interval: 30m
streams:
  - {issue: billing, channel: voice, per_hour: 90,
     handle: {dist: fixed, mean: 4m}, patience: {dist: exponential, mean: 3m}}
rules:
  - issue: billing
    skills: {billing: 3}
    targets: {voice: 20s}
    steps: [STEP]
agents:
  - {group: experts, count: 6, skills: {billing: 3}, capacity: {voice: 1}}
  - {group: juniors, count: 3, skills: {billing: 1}, capacity: {voice: 1}}
"""
TARGET_S = 20.0


def plan_of(text: str, step: str | None) -> Plan:
    if step is None:
        text = text.replace("    steps: [STEP]\n", "")
    return parse_scenario(text.replace("STEP", step or ""), "queue.yaml").plan


def answers(log: RunLog, group: str) -> list[int]:
    index = log.groups.index(group)
    return [i for i in range(log.contacts) if log.outcome[i] == ANSWERED and log.group[i] == index]


def ended_at(log: RunLog, i: int) -> float:
    return log.arrived_s[i] + log.wait_s[i]


def service_level(log: RunLog) -> float:
    answered = [i for i in range(log.contacts) if log.outcome[i] == ANSWERED]
    abandoned = sum(1 for o in log.outcome if o == ABANDONED)
    in_target = sum(1 for i in answered if log.wait_s[i] <= TARGET_S)
    return in_target / (len(answered) + abandoned)


def test_eligible_agents_at_most_lets_juniors_in_only_while_no_expert_is_on_duty() -> None:
    text = (
        PLAN.replace("per_hour: 90", "per_hour: 40")
        .replace("skills: {billing: 3}\n    targets", "skills: {billing: 4}\n    targets")
        .replace(
            "{group: experts, count: 6, skills: {billing: 3}, capacity: {voice: 1}}",
            "{group: experts, count: 3, skills: {billing: 4}, capacity: {voice: 1},\n"
            "     shifts: [{start: 0, end: 6h, breaks: [{at: 2h, length: 30m}]}]}",
        )
    )
    plan = plan_of(text, "{after: 0s, eligible_agents_at_most: 0, skills: {billing: 1}}")
    log = simulate(plan, 1)
    juniors, experts = answers(log, "juniors"), answers(log, "experts")
    duty = [spec.on_duty for spec in plan.agents if spec.group == "experts"]
    assert duty[0] == ((0.0, 7200.0), (9000.0, 21600.0))
    assert len(juniors) > 50 and len(experts) > 100
    for i in juniors:  # an expert available (even busy) keeps the step out of force
        t = ended_at(log, i)
        assert 7200.0 <= t < 9000.0 or t >= 21600.0, t
    # Contacts waiting when the experts leave are taken at that very moment (the sign-out
    # changes the eligible count: the sweep after the event finds them).
    times = {ended_at(log, i) for i in juniors}
    assert 7200.0 in times and 21600.0 in times
    # Without the step nobody answers while the experts are away.
    bare = simulate(plan_of(text, None), 1)
    assert not answers(bare, "juniors")


def test_service_level_below_widens_only_once_the_service_level_has_dropped() -> None:
    with_step = simulate(
        plan_of(PLAN, "{after: 0s, service_level_below: 0.8, skills: {billing: 1}}"), 1
    )
    without = simulate(plan_of(PLAN, None), 1)
    assert not answers(without, "juniors")
    juniors = answers(with_step, "juniors")
    assert len(juniors) > 50
    # Today's service level as the live counters keep it: answered within target over
    # answered and abandoned, 1 while there are none. Every junior answer comes while it
    # was below 0.8 (counting what happened before it and at the same instant).
    closed = [
        (ended_at(with_step, i), i, with_step.outcome[i] == ANSWERED and w <= TARGET_S)
        for i, w in enumerate(with_step.wait_s)
        if with_step.outcome[i] in (ANSWERED, ABANDONED)
    ]
    for i in juniors:
        t = ended_at(with_step, i)
        before = [ok for u, j, ok in closed if u <= t and j != i]
        assert before and sum(before) / len(before) < 0.8, t
    first_junior = min(ended_at(with_step, i) for i in juniors)
    assert first_junior > 60.0  # the level starts at 1 and has to fall first
    assert service_level(with_step) > service_level(without) + 0.2
    assert 0.75 < service_level(with_step) < 0.85  # held near the threshold, not far above


def test_expected_wait_over_widens_only_behind_a_long_enough_queue() -> None:
    with_step = simulate(
        plan_of(PLAN, "{after: 0s, expected_wait_over: 3m, skills: {billing: 1}}"), 1
    )
    without = simulate(plan_of(PLAN, None), 1)
    juniors = answers(with_step, "juniors")
    assert len(juniors) > 20
    # router.estimate: wait = (ahead + 1 - free) x AHT / slots with the six experts' slots
    # and AHT 240 s (fixed handle times; 300 s by default before the first completion):
    # >= 180 s needs at least 4 contacts waiting (the one decided included; 3 at first).
    spans = [
        (with_step.arrived_s[i], ended_at(with_step, i))
        for i in range(with_step.contacts)
        if with_step.outcome[i] in (ANSWERED, ABANDONED)
    ]
    for i in juniors:
        t = ended_at(with_step, i)
        waiting = sum(1 for a, e in spans if a <= t <= e)  # at most the queue then
        assert waiting >= (4 if t > 600.0 else 3), t
    assert service_level(with_step) > service_level(without)
    abandoned = [sum(1 for o in log.outcome if o == ABANDONED) for log in (with_step, without)]
    assert abandoned[0] < abandoned[1]


class _Checked(Engine):
    """The engine, checking after every event what a live pass would find: no waiting
    contact has an eligible agent under its requirements, signals included."""

    checks = 0

    def _sweep(self, qs: QueueState, now: float) -> None:
        super()._sweep(qs, now)
        for job in self._room.all_waiting():
            rule = self._rules[job.contact.issue]
            contact = job.contact
            if contact.issue in qs.issues:
                contact = qs.with_signals(contact, rule, self.floor, now)
            assert pick_agent(contact, self.floor, rule, now) is None, (now, contact)
            self.checks += 1


#: Old and young contacts of one waiting group may differ: the eligible count is taken under
#: the waiting-time steps, so after 60 s (cert relaxed) a busy expert counts and the first
#: step stops holding for the old contact, while it still holds for a young one.
DIVERGING = """\
name: diverging
seed: 2
horizon: 3h
interval: 30m
streams:
  - {issue: net, channel: voice, per_hour: 50,
     handle: {dist: exponential, mean: 5m}, patience: {dist: exponential, mean: 6m}}
  - {issue: net, channel: voice, per_hour: 15, priority: 1,
     handle: {dist: exponential, mean: 5m}, patience: {dist: exponential, mean: 6m}}
  - {issue: other, channel: chat, per_hour: 20, handle: {dist: exponential, mean: 5m}}
rules:
  - issue: net
    skills: {network: 4, cert: 2}
    steps: [{after: 0s, eligible_agents_at_most: 0, skills: {network: 1}},
            {after: 20s, service_level_below: 0.9, skills: {cert: 1}},
            {after: 60s, skills: {cert: 1}}]
agents:
  - {group: expert, count: 2, skills: {network: 4, cert: 1}, capacity: {voice: 1},
     shifts: [{start: 0, end: 2h}]}
  - {group: mid, count: 2, skills: {network: 2, cert: 1, other: 1},
     capacity: {voice: 1, chat: 1}, exclusive_channels: true}
  - {group: junior, count: 2, skills: {network: 1, cert: 2, other: 1},
     capacity: {voice: 1, chat: 2}}
"""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_after_every_event_no_waiting_contact_has_an_eligible_agent(seed: int) -> None:
    engine = _Checked(parse_scenario(DIVERGING).plan, seed)
    log = engine.run()
    assert engine.checks > 100
    assert answers(log, "junior") and answers(log, "mid") and answers(log, "expert")


def test_a_step_that_never_holds_changes_no_decision() -> None:
    # The experts are always there: `eligible_agents_at_most: 0` never holds.
    plan = plan_of(PLAN, "{after: 0s, eligible_agents_at_most: 0, skills: {billing: 1}}")
    bare = plan_of(PLAN, None)
    for seed in (1, 2):
        a, b = simulate(plan, seed), simulate(bare, seed)
        assert (a.outcome, a.wait_s, a.group, a.arrived_s) == (
            b.outcome,
            b.wait_s,
            b.group,
            b.arrived_s,
        )


def test_plans_without_queue_state_steps_take_the_old_path() -> None:
    for name in ("omnichannel_day.yaml", "mmc_erlang_check.yaml", "overflow_groups.yaml"):
        engine = Engine(load_scenario(EXAMPLES / name).plan, 1)
        assert engine._qs is None and not engine._cuts
    engine = Engine(load_scenario(EXAMPLES / "queue_state_steps.yaml").plan, 1)
    assert engine._qs is not None and engine._qs.issues == {"billing", "router_broken"}


def test_the_example_needs_its_queue_state_steps() -> None:
    path = EXAMPLES / "queue_state_steps.yaml"
    scenario = load_scenario(path)
    text = path.read_text()
    bare = parse_scenario(
        text.replace(
            "    steps: [{after: 0s, service_level_below: 0.8, skills: {billing: 1}}]\n", ""
        ).replace(
            "    steps: [{after: 0s, eligible_agents_at_most: 0, skills: {network: 1}},\n"
            "            {after: 0s, expected_wait_over: 2m, skills: {network: 1}}]\n",
            "",
        )
    ).plan
    assert all(not r.steps for r in bare.rules)
    with_steps, without = simulate(scenario.plan, 1), simulate(bare, 1)
    generalists = with_steps.groups.index("generalists")
    helped = {
        with_steps.issues[with_steps.issue[i]]
        for i in answers(with_steps, "generalists")
        if with_steps.group[i] == generalists
    }
    assert helped == {"billing", "router_broken", "questions"}
    assert {without.issues[without.issue[i]] for i in answers(without, "generalists")} == {
        "questions"
    }


def test_steps_parse_into_the_cores_conditions() -> None:
    rule = plan_of(
        PLAN,
        "{after: 10s, expected_wait_over: 2m, service_level_below: 0.75, "
        "eligible_agents_at_most: 2, skills: {billing: 1}}",
    ).rule("billing")
    step = rule.steps[0]
    assert (step.after_s, step.expected_wait_over_s, step.service_level_below) == (
        10.0,
        120.0,
        0.75,
    )
    assert step.eligible_at_most == 2 and dict(step.min_proficiency) == {"billing": 1}
    assert rule.required_at(math.inf) == {"billing": 3}  # no signals: never in force


GOOD_STEP = "{after: 0s, service_level_below: 0.8, skills: {billing: 1}}"


@pytest.mark.parametrize(
    ("step", "where"),
    [
        (
            "{after: 0s, service_level_below: 1.5, skills: {billing: 1}}",
            "queue.yaml:13: rules[0].steps[0].service_level_below: must be between 0 and 1",
        ),
        (
            "{after: 0s, service_level_below: 0, skills: {billing: 1}}",
            "queue.yaml:13: rules[0].steps[0].service_level_below: can never apply",
        ),
        (
            "{after: 0s, expected_wait_over: 0s, skills: {billing: 1}}",
            "queue.yaml:13: rules[0].steps[0].expected_wait_over: can never apply",
        ),
        (
            "{after: 0s, expected_wait_over: soon, skills: {billing: 1}}",
            "queue.yaml:13: rules[0].steps[0].expected_wait_over: expected a duration",
        ),
        (
            "{after: 0s, eligible_agents_at_most: -1, skills: {billing: 1}}",
            "queue.yaml:13: rules[0].steps[0].eligible_agents_at_most: must be between 0 and",
        ),
        (
            "{after: 0s, eligible_agents_at_most: 2.5, skills: {billing: 1}}",
            "queue.yaml:13: rules[0].steps[0].eligible_agents_at_most: expected a whole number",
        ),
        (
            "{after: 0s, eligible_at_most: 0, skills: {billing: 1}}",
            "queue.yaml:13: rules[0].steps[0].eligible_at_most: unknown field",
        ),
        (
            "{after: 0s, service_level_below: 0.8}",
            "queue.yaml:13: rules[0].steps[0].skills: a step must change at least one skill",
        ),
        (  # a queue-state step may only lower, like any step
            "{after: 0s, service_level_below: 0.8, skills: {billing: 4}}",
            "queue.yaml:13: rules[0].steps[0]: skills.billing: a relaxation step may only lower",
        ),
        (  # checked with every step applied: the later step would undo the lowering
            GOOD_STEP + ", {after: 1m, skills: {billing: 2}}",
            "queue.yaml:13: rules[0].steps[1]: skills.billing: a relaxation step may only lower",
        ),
        (
            "{after: 1m, skills: {billing: 2}}, " + GOOD_STEP,
            "queue.yaml:13: rules[0].steps[1].after: steps must be in strictly increasing",
        ),
    ],
)
def test_bad_queue_state_steps_name_line_and_field(step: str, where: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        plan_of(PLAN, step)
    assert str(caught.value).startswith(where), str(caught.value)


def test_coverage_counts_a_fallback_on_no_eligible_agent_but_not_on_the_expected_wait() -> None:
    nobody = PLAN.replace(
        "{group: experts, count: 6, skills: {billing: 3}",
        "{group: experts, count: 6, skills: {billing: 2}",
    )
    # Nobody holds billing 3: juniors may take it while no one eligible is available.
    plan = plan_of(nobody, "{after: 0s, eligible_agents_at_most: 0, skills: {billing: 1}}")
    assert answers(simulate(plan, 1), "juniors")
    # The expected wait is unknown with no eligible slot: such a step never applies.
    with pytest.raises(ScenarioError) as caught:
        plan_of(nobody, "{after: 0s, expected_wait_over: 1m, skills: {billing: 1}}")
    assert str(caught.value).startswith(
        "queue.yaml:7: streams[0]: no agent group can take 'billing' on voice (needs "
        "{'billing': 3} and voice capacity; a step on expected_wait_over never applies"
    ), str(caught.value)
