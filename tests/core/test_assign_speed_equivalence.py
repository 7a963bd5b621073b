"""The fast routing core decides exactly as the straightforward one it replaced.

`pick_agent`, `assign` and `Floor.reserve/release` were rewritten for speed (an inline score
loop, no per-candidate dataclass, no sort of the candidate ids, in-place index updates). The
straightforward versions are kept below, verbatim, as the oracle: on random floors, contacts,
rules and in-round reservations, both return the same decisions -- same agent, same score
components bit for bit, same runner-up, same counts -- and both floors hold the same agents
after the same reservations and releases.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.assign import (
    Decision,
    Floor,
    _bar,
    _with_load,
    assign,
    pick_agent,
    queue_rank,
    rule_for,
)
from router.domain import (
    MAX_PROFICIENCY,
    Agent,
    AgentId,
    AgentKind,
    AgentState,
    Channel,
    Contact,
    ContactId,
    CustomerId,
)
from router.rules import RelaxationStep, Requirements, Rule, RuleBook, Weights

# -- the oracle: the routing core as it was before the speed-up ---------------------------


@dataclass(frozen=True, slots=True)
class RefScore:
    """`router.scoring.Score` as it was."""

    total: float
    proficiency: float
    idle: float
    occupancy: float
    affinity: float


@dataclass(frozen=True, slots=True)
class RefDecision:
    """`router.assign.Decision` as it was (without the explanation helpers)."""

    contact: Contact
    agent: Agent
    score: RefScore
    considered: int
    eligible: int
    runner_up: tuple[AgentId, RefScore] | None
    step: int
    required: Mapping[str, int]


def ref_has_skills(agent: Agent, required: Mapping[str, int]) -> bool:
    skills = agent.skills
    # Agent groups came after the speed-up: the oracle checks them the plain way.
    groups = required.groups if isinstance(required, Requirements) else None
    if groups is not None and not agent.groups & groups:
        return False
    return all(skills.get(skill, 0) >= level for skill, level in required.items())


def ref_eligible(
    agent: Agent, contact: Contact, required: Mapping[str, int], taken: int = 0
) -> bool:
    return (
        agent.is_available
        and agent.free_slots(contact.channel) > taken
        and ref_has_skills(agent, required)
    )


def ref_score(
    agent: Agent,
    contact: Contact,
    required: Mapping[str, int],
    weights: Weights,
    now: float,
    taken: int = 0,
) -> RefScore:
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
    return RefScore(total, proficiency, idle, occupancy, affinity)


def ref_preference(agent: Agent, agent_score: RefScore) -> tuple[float, float, str]:
    return (round(agent_score.total, 9), -agent.idle_since, ref_reverse(agent.id))


@lru_cache(maxsize=65_536)
def ref_reverse(text: str) -> str:
    return "".join(chr(0x10FFFF - ord(ch)) for ch in text)


class RefFloor:
    """`router.assign.Floor` as it was."""

    def __init__(self, agents: Iterable[Agent] = ()) -> None:
        self._agents: dict[AgentId, Agent] = {}
        self._by_skill: defaultdict[str, set[AgentId]] = defaultdict(set)
        self._available: set[AgentId] = set()
        self._open: defaultdict[Channel, set[AgentId]] = defaultdict(set)
        for agent in agents:
            self.put(agent)

    def put(self, agent: Agent) -> None:
        old = self._agents.get(agent.id)
        if old is not None and old.skills is not agent.skills:
            for skill in old.skills:
                self._by_skill[skill].discard(agent.id)
        self._agents[agent.id] = agent
        if old is None or old.skills is not agent.skills:
            for skill in agent.skills:
                self._by_skill[skill].add(agent.id)
        if agent.is_available:
            self._available.add(agent.id)
        else:
            self._available.discard(agent.id)
        if old is not None:
            for channel in old.capacity:
                self._open[channel].discard(agent.id)
        if agent.is_available:
            for channel in agent.capacity:
                if agent.free_slots(channel) > 0:
                    self._open[channel].add(agent.id)

    def remove(self, agent_id: AgentId) -> None:
        old = self._agents.pop(agent_id, None)
        if old is not None:
            for skill in old.skills:
                self._by_skill[skill].discard(agent_id)
            for channel in old.capacity:
                self._open[channel].discard(agent_id)
        self._available.discard(agent_id)

    def get(self, agent_id: AgentId) -> Agent | None:
        return self._agents.get(agent_id)

    def __iter__(self) -> Iterator[Agent]:
        return iter(self._agents.values())

    def _in_groups(self, ids: set[AgentId], required: Mapping[str, int]) -> set[AgentId]:
        groups = required.groups if isinstance(required, Requirements) else None
        if groups is None:
            return ids
        return {a for a in ids if self._agents[a].groups & groups}

    def candidates(self, required: Mapping[str, int]) -> list[Agent]:
        if required:
            pools = sorted((self._by_skill.get(skill, set()) for skill in required), key=len)
            ids = pools[0].intersection(self._available, *pools[1:])
        else:
            ids = set(self._available)
        ids = self._in_groups(ids, required)
        return [self._agents[agent_id] for agent_id in sorted(ids)]

    def open_candidates(
        self, required: Mapping[str, int], channel: Channel
    ) -> tuple[int, list[Agent]]:
        if required:
            pools = sorted((self._by_skill.get(skill, set()) for skill in required), key=len)
            ids = pools[0].intersection(self._available, *pools[1:])
        else:
            ids = self._available
        ids = self._in_groups(set(ids), required)
        open_ids = ids.intersection(self._open.get(channel, ()))
        return len(ids), [self._agents[agent_id] for agent_id in sorted(open_ids)]

    def reserve(self, agent_id: AgentId, channel: Channel, now: float) -> None:
        agent = self._agents[agent_id]
        load = dict(agent.load)
        load[channel] = load.get(channel, 0) + 1
        self.put(replace(agent, load=load, idle_since=now))

    def release(self, agent_id: AgentId, channel: Channel) -> None:
        agent = self._agents.get(agent_id)
        if agent is None:
            return
        load = dict(agent.load)
        load[channel] = max(0, load.get(channel, 0) - 1)
        self.put(replace(agent, load=load))


def ref_pick_agent(
    contact: Contact,
    floor: RefFloor,
    rule: Rule,
    now: float,
    taken: Mapping[tuple[AgentId, Channel], int] | None = None,
) -> RefDecision | None:
    taken = taken or {}
    required = rule.requirements(contact, now)
    best: tuple[tuple[bool, float, float, str], Agent, RefScore] | None = None
    second: tuple[tuple[bool, float, float, str], Agent, RefScore] | None = None
    considered, pool = floor.open_candidates(required, contact.channel)
    count = 0
    for agent in pool:
        held = taken.get((agent.id, contact.channel), 0)
        if not ref_eligible(agent, contact, required, held):
            continue
        count += 1
        agent_score = ref_score(agent, contact, required, rule.weights, now, held)
        fresh = agent.id not in contact.declined_by
        entry = ((fresh, *ref_preference(agent, agent_score)), agent, agent_score)
        if best is None or entry[0] > best[0]:
            second = best
            best = entry
        elif second is None or entry[0] > second[0]:
            second = entry
    if best is None:
        return None
    return RefDecision(
        contact=contact,
        agent=best[1],
        score=best[2],
        considered=considered,
        eligible=count,
        runner_up=(second[1].id, second[2]) if second else None,
        step=rule.step_at(contact.waited_s(now)),
        required=required,
    )


def ref_assign(
    contacts: Sequence[Contact], floor: RefFloor, rules: RuleBook, now: float
) -> list[RefDecision]:
    ranked = sorted(contacts, key=lambda c: queue_rank(c, rule_for(rules, c.issue)))
    taken: Counter[tuple[AgentId, Channel]] = Counter()
    decisions: list[RefDecision] = []
    for contact in ranked:
        decision = ref_pick_agent(contact, floor, rule_for(rules, contact.issue), now, taken)
        if decision is not None:
            taken[(decision.agent.id, contact.channel)] += 1
            decisions.append(decision)
    return decisions


# -- strategies ---------------------------------------------------------------------------

NOW = 50_000.0
SKILLS = ("billing", "tech", "sales", "lang.en", "lang.fr")
ISSUES = ("billing", "tech", "sales")
CHANNELS = (Channel.VOICE, Channel.CHAT, Channel.EMAIL)
#: Ids that are prefixes of one another, so that the id tie-break is exercised where
#: "reversed id" and "smaller id" differ ("a" against "ab").
IDS = tuple(AgentId(i) for i in ("a", "ab", "a1", "a10", "a2", "b", "b0", "bb", "c", "z9"))
GROUPS = ("tier1", "tier2", "overflow")
IDLE_AGO = (0.0, 0.5, 60.0, 299.5, 600.0, 1e6, -30.0)
WEIGHT = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 0.1, 100.0])


@st.composite
def agents_st(draw: st.DrawFn) -> list[Agent]:
    ids = draw(st.lists(st.sampled_from(IDS), min_size=3, max_size=len(IDS), unique=True))
    agents = []
    for agent_id in ids:
        skills = {s: lv for s in SKILLS if (lv := draw(st.sampled_from([0, 1, 2, 3, 4, 5, 5, 7])))}
        # Mostly a free slot or two; sometimes none, a channel missing, or load past capacity.
        capacity = {ch: draw(st.sampled_from([0, 1, 2, 3, 3])) for ch in CHANNELS}
        load = {ch: draw(st.sampled_from([0, 0, 0, 1, 2, 4])) for ch in CHANNELS}
        if draw(st.booleans()):
            capacity.pop(draw(st.sampled_from(CHANNELS)))
            load.pop(draw(st.sampled_from(CHANNELS)))
        state = draw(
            st.sampled_from([AgentState.AVAILABLE] * 6 + [AgentState.AWAY, AgentState.SIGNED_OUT])
        )
        agents.append(
            Agent(
                id=agent_id,
                skills=MappingProxyType(skills) if draw(st.booleans()) else skills,
                capacity=capacity,
                load=load,
                state=state,
                idle_since=NOW - draw(st.sampled_from(IDLE_AGO)),
                groups=frozenset(draw(st.sets(st.sampled_from(GROUPS), max_size=2))),
            )
        )
    return agents


@st.composite
def rule_st(draw: st.DrawFn, issue: str) -> Rule:
    level = st.sampled_from([1, 1, 2, 3, 5])
    skills = {issue: draw(level)}
    for extra in draw(st.sets(st.sampled_from(SKILLS), max_size=1)):
        skills[extra] = draw(level)
    steps = []
    after = 0.0
    for _ in range(draw(st.integers(0, 3))):
        after += draw(st.sampled_from([1.0, 10.0, 30.0]))
        changes = {
            s: draw(st.integers(0, 5)) for s in draw(st.sets(st.sampled_from(SKILLS), min_size=1))
        }
        widen = frozenset(draw(st.sets(st.sampled_from(GROUPS), max_size=1)))
        steps.append(RelaxationStep(after_s=after, min_proficiency=changes, add_groups=widen))
    weights = Weights(
        proficiency=draw(WEIGHT),
        idle=draw(WEIGHT),
        occupancy=draw(WEIGHT),
        affinity=draw(WEIGHT),
        idle_horizon_s=draw(st.sampled_from([1.0, 60.0, 600.0, 3600.0])),
    )
    return Rule(
        issue=issue,
        skills=skills,
        steps=tuple(steps),
        weights=weights,
        require_language=draw(st.booleans()),
        agent_groups=frozenset(draw(st.sets(st.sampled_from(GROUPS), max_size=2))),
    )


@st.composite
def contacts_st(draw: st.DrawFn) -> list[Contact]:
    some_ids = st.lists(st.sampled_from(IDS), max_size=3, unique=True).map(tuple)
    contacts = []
    for k in range(draw(st.integers(1, 8))):
        contacts.append(
            Contact(
                id=ContactId(f"c{k}"),
                channel=draw(st.sampled_from(CHANNELS)),
                issue=draw(st.sampled_from(ISSUES)),
                arrived_at=NOW - draw(st.sampled_from([0.0, 0.5, 5.0, 15.0, 45.0, 400.0])),
                priority=draw(st.integers(0, 2)),
                language=draw(st.sampled_from(["", "", "en", "fr"])),
                customer_id=CustomerId("cust"),
                last_agent_id=draw(st.none() | st.sampled_from(IDS)),
                known_agent_ids=draw(some_ids),
                declined_by=draw(some_ids),
            )
        )
    return contacts


@st.composite
def taken_st(draw: st.DrawFn) -> dict[tuple[AgentId, Channel], int]:
    keys = draw(st.sets(st.tuples(st.sampled_from(IDS), st.sampled_from(CHANNELS))))
    return {key: draw(st.integers(0, 3)) for key in keys}


# -- comparison ---------------------------------------------------------------------------


def _bits(score: object) -> tuple[str, ...]:
    """A score's components as exact hex floats: equal only if bit-identical."""
    return tuple(
        float(getattr(score, name)).hex()
        for name in ("total", "proficiency", "idle", "occupancy", "affinity")
    )


def assert_same(new: Decision | None, ref: RefDecision | None) -> None:
    """Same agent (the very same object), score bits, runner-up, counts, step, required."""
    if ref is None:
        assert new is None
        return
    assert new is not None
    assert new.contact is ref.contact
    assert new.agent == ref.agent
    assert _bits(new.score) == _bits(ref.score)
    assert (new.considered, new.eligible, new.step) == (ref.considered, ref.eligible, ref.step)
    assert new.required == ref.required
    if ref.runner_up is None:
        assert new.runner_up is None
    else:
        assert new.runner_up is not None
        assert new.runner_up[0] == ref.runner_up[0]
        assert _bits(new.runner_up[1]) == _bits(ref.runner_up[1])


def assert_same_floor(new: Floor, ref: RefFloor) -> None:
    assert list(new) == list(ref)
    for required in ({}, {"billing": 1}, {"tech": 1, "lang.en": 1}):
        assert new.candidates(required) == ref.candidates(required)
        for channel in CHANNELS:
            assert new.open_candidates(required, channel) == ref.open_candidates(required, channel)


# -- tests ----------------------------------------------------------------------------------

EXAMPLES = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@EXAMPLES
@given(data=st.data())
def test_pick_agent_decides_as_the_reference(data: st.DataObject) -> None:
    agents = data.draw(agents_st())
    contact = data.draw(contacts_st())[0]
    rule = data.draw(rule_st(contact.issue))
    taken = data.draw(st.none() | taken_st())
    now = NOW + data.draw(st.sampled_from([0.0, 0.5, 12.0, 40.0]))
    new = pick_agent(contact, Floor(agents), rule, now, taken)
    ref = ref_pick_agent(contact, RefFloor(agents), rule, now, taken)
    assert_same(new, ref)


@EXAMPLES
@given(data=st.data())
def test_assign_decides_as_the_reference(data: st.DataObject) -> None:
    agents = data.draw(agents_st())
    contacts = data.draw(contacts_st())
    rules = RuleBook(
        [data.draw(rule_st(issue)) for issue in ISSUES[: data.draw(st.integers(0, 3))]]
    )
    now = NOW + data.draw(st.sampled_from([0.0, 12.0, 40.0]))
    new = assign(contacts, Floor(agents), rules, now)
    ref = ref_assign(contacts, RefFloor(agents), rules, now)
    assert len(new) == len(ref)
    for one, other in zip(new, ref, strict=True):
        assert_same(one, other)


@EXAMPLES
@given(data=st.data())
def test_reserve_release_and_put_keep_the_floor_as_the_reference(data: st.DataObject) -> None:
    agents = data.draw(agents_st())
    new, ref = Floor(agents), RefFloor(agents)
    known = [a.id for a in agents]
    for _ in range(data.draw(st.integers(1, 12))):
        op = data.draw(st.sampled_from(["reserve", "release", "put", "remove", "pick"]))
        agent_id = data.draw(st.sampled_from(known))
        channel = data.draw(st.sampled_from(CHANNELS))
        if op == "reserve" and new.get(agent_id) is not None:
            now = NOW + data.draw(st.sampled_from([1.0, 2.0]))
            new.reserve(agent_id, channel, now)
            ref.reserve(agent_id, channel, now)
        elif op == "release":
            new.release(agent_id, channel)
            ref.release(agent_id, channel)
        elif op == "put":
            agent = data.draw(agents_st())[0]
            agent = replace(agent, id=agent_id)
            new.put(agent)
            ref.put(agent)
        elif op == "remove":
            new.remove(agent_id)
            ref.remove(agent_id)
        else:
            contact = data.draw(contacts_st())[0]
            rule = data.draw(rule_st(contact.issue))
            assert_same(
                pick_agent(contact, new, rule, NOW), ref_pick_agent(contact, ref, rule, NOW)
            )
        assert_same_floor(new, ref)


def busy_floor(rng: random.Random) -> tuple[list[Agent], list[Contact], RuleBook]:
    """A crowded round: 60 agents, most eligible for most of 40 contacts, with few distinct
    levels, idle times and weights, so that ties on the rounded score are common and
    agents take several contacts of one round."""
    ids = [AgentId(f"a{k}") for k in range(50)] + list(IDS)
    agents = [
        Agent(
            id=agent_id,
            skills={s: rng.choice([1, 2, 3, 5, 6]) for s in SKILLS if rng.random() < 0.8},
            capacity={ch: rng.choice([0, 1, 2, 3]) for ch in CHANNELS},
            load={ch: rng.choice([0, 0, 1]) for ch in CHANNELS},
            state=AgentState.AVAILABLE if rng.random() < 0.9 else AgentState.AWAY,
            idle_since=NOW - rng.choice(IDLE_AGO),
        )
        for agent_id in ids
    ]
    some = [tuple(rng.sample(ids, rng.choice([0, 0, 1, 3]))) for _ in range(40)]
    contacts = [
        Contact(
            id=ContactId(f"c{k:02d}"),
            channel=rng.choice(CHANNELS),
            issue=rng.choice(ISSUES),
            arrived_at=NOW - rng.choice([0.0, 5.0, 15.0, 45.0]),
            priority=rng.choice([0, 0, 1]),
            language=rng.choice(["", "", "en"]),
            last_agent_id=rng.choice([None, None, *ids]),
            known_agent_ids=some[k],
            declined_by=some[-k],
        )
        for k in range(40)
    ]
    weights = rng.choice([[0.0, 0.5, 1.0, 2.0], [0.1, 0.2, 0.3, 0.7]])
    rules = RuleBook(
        Rule(
            issue=issue,
            skills={issue: rng.choice([1, 2])},
            steps=(RelaxationStep(10.0, {issue: 1}),) if rng.random() < 0.5 else (),
            weights=Weights(
                proficiency=rng.choice(weights),
                idle=rng.choice(weights),
                occupancy=rng.choice(weights),
                affinity=rng.choice(weights),
                idle_horizon_s=rng.choice([60.0, 600.0]),
            ),
        )
        for issue in ISSUES
    )
    return agents, contacts, rules


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_assign_on_busy_floors_decides_as_the_reference(seed: int) -> None:
    agents, contacts, rules = busy_floor(random.Random(seed))
    new = assign(contacts, Floor(agents), rules, NOW)
    ref = ref_assign(contacts, RefFloor(agents), rules, NOW)
    assert len(new) == len(ref)
    for one, other in zip(new, ref, strict=True):
        assert_same(one, other)


@pytest.mark.parametrize("nan_in", ["total", "idle_since"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_non_finite_scores_and_idle_times_decide_as_the_reference(
    nan_in: str, data: st.DataObject
) -> None:
    """NaN totals (an infinite weight times 0) or NaN idle times make the preference order
    partial: then the order of the candidates matters and the fast path must keep id order.
    Each case alone, so that one does not send the other down the id-order path."""
    agents = data.draw(agents_st())
    contact = data.draw(contacts_st())[0]
    rule = data.draw(rule_st(contact.issue))
    if nan_in == "idle_since":
        # Only agents tied on the rounded score reach the idle part of the key: few weights.
        nan = st.sampled_from([True, True, True, False])
        agents = [replace(a, idle_since=math.nan) if data.draw(nan) else a for a in agents]
        few = st.sampled_from([0.0, 1.0])
        rule = replace(rule, weights=Weights(proficiency=data.draw(few), occupancy=data.draw(few)))
    else:
        odd = st.sampled_from([math.inf, 0.0, 1.0])
        rule = replace(rule, weights=Weights(affinity=data.draw(odd), idle=data.draw(odd)))
    new = pick_agent(contact, Floor(agents), rule, NOW)
    ref = ref_pick_agent(contact, RefFloor(agents), rule, NOW)
    assert (new is None) == (ref is None)
    if new is not None and ref is not None:
        assert new.agent == ref.agent
        assert _bits(new.score) == _bits(ref.score)
        assert (new.considered, new.eligible) == (ref.considered, ref.eligible)
        assert (new.runner_up or ("",))[0] == (ref.runner_up or ("",))[0]


def test_the_floors_fast_copy_of_an_agent_carries_every_field() -> None:
    """`Floor.reserve` copies agents without `dataclasses.replace`: a field added to
    `Agent` must be carried too (this test names every field and sets each apart)."""
    agent = Agent(
        id=AgentId("a1"),
        skills={"billing": 3},
        capacity={Channel.VOICE: 2},
        load={Channel.VOICE: 1},
        state=AgentState.AVAILABLE,
        idle_since=7.0,
        version=11,
        display_name="Ann",
        away_reason="lunch",
        kind=AgentKind.BOT,
        state_since=5.0,
        missed_offers=3,
        groups=frozenset({"tier2"}),
    )
    assert {f.name for f in fields(Agent)} == {
        "id", "skills", "capacity", "load", "state", "idle_since", "version",
        "display_name", "away_reason", "kind", "state_since", "missed_offers", "groups",
    }  # fmt: skip
    load = {Channel.VOICE: 2}
    assert _with_load(agent, load, 9.0) == replace(agent, load=load, idle_since=9.0)
    # Through the floor: a person (a bot's load is kept apart, without the fast copy).
    person = replace(agent, kind=AgentKind.HUMAN)
    floor = Floor([person])
    floor.reserve(person.id, Channel.VOICE, 9.0)
    assert floor.get(person.id) == replace(person, load={Channel.VOICE: 2}, idle_since=9.0)
    floor.release(person.id, Channel.VOICE)
    assert floor.get(person.id) == replace(person, load={Channel.VOICE: 1}, idle_since=9.0)


@settings(max_examples=400, deadline=None)
@given(
    total=st.floats(-3e6, 3e6) | st.sampled_from([0.0, 0.3, 1.0, 4.5, 999_999.9, -1e6]),
    below=st.sampled_from([0.0, 1e-12, 4e-10, 5e-10, 1e-9, 1.5e-9, 2e-9, 2.01e-9, 3e-9, 1e-6]),
    ulps=st.integers(-3, 3),
)
def test_a_total_below_the_bar_rounds_strictly_below(total: float, below: float, ulps: int) -> None:
    """The lemma behind skipping candidates without rounding their score (`_bar`)."""
    other = total - below
    for _ in range(abs(ulps)):
        other = math.nextafter(other, math.copysign(math.inf, ulps))
    if other < _bar(total):
        assert round(other, 9) < round(total, 9)
