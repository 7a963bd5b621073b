"""The event loop: determinism, the core's decisions, relaxation, shifts, journeys."""

from __future__ import annotations

import math
from dataclasses import replace
from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st

from router.domain import AgentId, Channel, CustomerId
from router.rules import RuleBook, Weights
from simulations.engine import Engine, simulate
from simulations.models import Exponential, Fixed, Stream
from simulations.plan import History, Journeys, Plan, ReplayContact
from simulations.results import replicate, summarize
from simulations.runlog import ABANDONED, ANSWERED
from tests.sim.sim_plans import agents, mmc_plan, relaxing_rule


def test_same_seed_gives_identical_results_and_another_seed_does_not() -> None:
    plan = mmc_plan(0.1, 60.0, 6, 3600.0, patience=Exponential(90.0))
    first, again, other = simulate(plan, 3), simulate(plan, 3), simulate(plan, 4)
    assert first.wait_s == again.wait_s and first.outcome == again.outcome
    assert first.busy_s == again.busy_s
    assert first.wait_s != other.wait_s
    a = replicate(plan, 3, seed=9).total("asa_s")
    b = replicate(plan, 3, seed=9).total("asa_s")
    assert a == b


def test_every_contact_ends_answered_or_abandoned_when_agents_stay() -> None:
    plan = mmc_plan(0.2, 60.0, 10, 3600.0, patience=Exponential(60.0))
    log = simulate(plan, 1)
    assert log.contacts > 500
    assert set(log.outcome) <= {ANSWERED, ABANDONED}
    assert 3600.0 <= log.end_s < 3600.0 + 3600.0  # the run ends once the queue drains


def test_relaxation_step_lets_a_waiting_contact_reach_a_weaker_agent_at_the_threshold() -> None:
    plan = Plan(
        agents=agents(1, skills={"billing": 1}),
        rules=RuleBook([relaxing_rule()]),
        horizon_s=100.0,
        streams=(Stream("billing", Channel.VOICE, (0.0,), 100.0, Fixed(10.0)),),
    )
    engine = Engine(plan, 0)
    log = engine.run()
    assert log.contacts == 0
    # one contact at t=5: nobody holds level 3, so it waits until the 30 s step
    plan = replace(plan, replay=(_replayed(5.0),))
    log = simulate(plan, 0)
    assert log.outcome == [ANSWERED]
    assert log.wait_s == [30.0]


def _replayed(
    t: float, handle: float = 10.0, customer: str | None = None, channel: Channel = Channel.VOICE
) -> ReplayContact:
    return ReplayContact(
        t, "billing", channel, 0, CustomerId(customer) if customer else None, handle, math.inf
    )


def test_agent_on_break_takes_nothing_and_the_contact_waits_for_the_return() -> None:
    team = agents(1, on_duty=((0.0, 10.0), (20.0, 100.0)))
    plan = Plan(agents=team, rules=RuleBook(), horizon_s=100.0, replay=(_replayed(12.0),))
    log = simulate(plan, 0)
    assert log.wait_s == [8.0]


def test_agent_finishes_contact_in_hand_after_signing_out() -> None:
    team = agents(1, on_duty=((0.0, 10.0),))
    plan = Plan(
        agents=team,
        rules=RuleBook(),
        horizon_s=100.0,
        replay=(_replayed(5.0, handle=30.0), _replayed(6.0)),
    )
    log = simulate(plan, 0)
    assert log.outcome[0] == ANSWERED
    assert log.outcome[1] != ANSWERED  # nobody came back on duty


def test_exclusive_channels_close_chat_while_on_a_call() -> None:
    caps = {Channel.VOICE: 1, Channel.CHAT: 2}
    calls = (_replayed(0.0, 50.0), _replayed(1.0, 10.0, channel=Channel.CHAT))
    for exclusive, chat_wait in ((False, 0.0), (True, 49.0)):
        plan = Plan(
            agents=agents(1, capacity=caps, exclusive=exclusive),
            rules=RuleBook(),
            horizon_s=100.0,
            replay=calls,
        )
        assert simulate(plan, 0).wait_s[1] == chat_wait


def test_unresolved_contact_comes_back_to_the_agent_who_knows_the_customer() -> None:
    team = agents(3)
    journeys = Journeys(base=0.0, max_contacts=2, return_delay=Fixed(100.0))
    plan = Plan(
        agents=team,
        rules=RuleBook(),
        horizon_s=1000.0,
        journeys=journeys,
        weights=Weights(affinity=10.0),
        replay=(_replayed(0.0, customer="k1"),),
    )
    engine = Engine(plan, 0)
    log = engine.run()
    assert log.contacts == 2 and log.repeat == [False, True]
    assert log.arrived_s[1] == 110.0
    history = engine._history  # the customer's record: both handled by the same agent
    assert [agent for _, _, agent in history[next(iter(history))]] == [AgentId("g-000")] * 2


def test_shared_history_resolves_more_repeats_than_none() -> None:
    journeys = Journeys(base=0.5, with_history=0.4, max_contacts=3, return_delay=Fixed(60.0))
    base = replace(mmc_plan(0.05, 60.0, 5, 4 * 3600.0), journeys=journeys)
    shared = summarize(simulate(replace(base, history=History.SHARED), 2), base)
    none = summarize(simulate(replace(base, history=History.NONE), 2), base)
    assert shared.total.repeats < none.total.repeats


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4), st.floats(0.01, 0.2))
def test_no_agent_ever_exceeds_capacity_and_no_contact_is_lost(
    seed: int, servers: int, rate: float
) -> None:
    caps = MappingProxyType({Channel.VOICE: 1, Channel.CHAT: 2})
    plan = Plan(
        agents=agents(servers, capacity=caps, on_duty=((0.0, 900.0), (1200.0, 3000.0))),
        rules=RuleBook([relaxing_rule()]),
        horizon_s=3600.0,
        streams=(
            Stream(
                "billing", Channel.VOICE, (rate,), 3600.0, Exponential(60.0), Exponential(120.0)
            ),
            Stream("billing", Channel.CHAT, (rate,), 3600.0, Exponential(200.0)),
        ),
    )
    engine = Engine(plan, seed)
    start = engine._start

    def checked(job, decision, now):  # type: ignore[no-untyped-def]
        start(job, decision, now)
        agent = engine.floor.get(decision.agent.id)
        assert agent is not None
        assert all(agent.load.get(ch, 0) <= n for ch, n in caps.items())

    engine._start = checked  # type: ignore[method-assign]
    log = engine.run()
    assert len(log.outcome) == log.contacts
    assert all(o >= 0 for o in log.outcome)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(1, 5), st.booleans()),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from([Channel.VOICE, Channel.CHAT]),
    st.floats(0.0, 100.0),
)
def test_pick_agent_with_open_slot_index_decides_as_a_full_scan(
    spec: list[tuple[int, int, int, bool]], channel: Channel, now: float
) -> None:
    """The simulator's speed-up in the core (scoring only agents with a free slot on the
    channel) changes no decision: compare with the original scan over all candidates."""
    from router.assign import Floor, pick_agent
    from router.domain import Agent, AgentState, Contact, ContactId
    from router.rules import default_rule
    from router.scoring import eligible, preference, score

    agents = [
        Agent(
            id=AgentId(f"a{k}"),
            skills={"billing": level},
            capacity={Channel.VOICE: 1, Channel.CHAT: 2},
            load={Channel.VOICE: voice, Channel.CHAT: chat},
            state=AgentState.AVAILABLE if available else AgentState.AWAY,
            idle_since=float(k % 3),
        )
        for k, (voice, chat, level, available) in enumerate(spec)
    ]
    floor = Floor(agents)
    contact = Contact(ContactId("c1"), channel, "billing", arrived_at=0.0)
    rule = default_rule("billing")
    decision = pick_agent(contact, floor, rule, now)
    required = rule.requirements(contact, now)
    pool = [a for a in floor.candidates(required) if eligible(a, contact, required)]
    expected = max(
        pool,
        key=lambda a: preference(a, score(a, contact, required, rule.weights, now)),
        default=None,
    )
    assert (decision.agent.id if decision else None) == (expected.id if expected else None)
    if decision is not None:
        assert decision.considered == len(floor.candidates(required))
