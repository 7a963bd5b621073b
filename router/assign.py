"""Assignment: which waiting contacts go to which agents at one decision moment.

`Floor` holds one tenant's agents in memory, indexed by skill, so that finding the
candidates for a contact does not scan the whole floor. `assign` walks the waiting
contacts in queue order (priority, then nearest to breaching its channel's target) and
gives each the best eligible agent, counting the slots it has already handed out in this
round. It is pure: the live engine commits its decisions through Redis scripts that
re-check them, and the simulator applies them to its own floor.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace

from router.domain import (
    MAX_PRIORITY,
    MAX_PROFICIENCY,
    Agent,
    AgentId,
    AgentKind,
    Channel,
    Contact,
)
from router.rules import Requirements, Rule, RuleBook, Weights, default_rule, groups_of
from router.scoring import Score, has_skills, reversed_id, score

#: What the scoring loop of `pick_agent` reads of one agent, kept by `Floor` per change of
#: the agent so that the loop does no attribute walk, sum or string work per candidate:
#: (agent, skills, idle_since, -idle_since, reversed id, total capacity, contacts in hand).
_Profile = tuple[Agent, Mapping[str, int], float, float, str, int, int]
#: A candidate while ranking: (preference key, profile, slots already taken this round).
_Entry = tuple[tuple[bool, float, float, str], _Profile, int]
_NO_IDS: frozenset[AgentId] = frozenset()
_Ids = set[AgentId] | frozenset[AgentId]
#: See `_bar`: totals this far apart round to 9 digits in the same strict order ...
_ROUND_MARGIN = 2e-9
#: ... when the larger one is smaller than this in magnitude.
_ROUND_SAFE = 1e6


@dataclass(frozen=True, slots=True)
class Decision:
    """One contact given to one agent, with the reasons (for logs and explanations)."""

    contact: Contact
    agent: Agent
    score: Score
    considered: int
    eligible: int
    runner_up: tuple[AgentId, Score] | None
    step: int
    required: Mapping[str, int]

    @property
    def relaxed(self) -> bool:
        """Did a relaxation step apply?"""
        return self.step >= 0


class Floor:
    """One tenant's agents, indexed by skill and availability. In-memory, no I/O.

    Bots are kept apart (`bots`): they take only contacts sent to a bot first, through
    `pick_bot`, so the indexes, the candidates and iteration hold people only."""

    def __init__(self, agents: Iterable[Agent] = ()) -> None:
        self._agents: dict[AgentId, Agent] = {}
        self._bots: dict[AgentId, Agent] = {}
        self._by_skill: defaultdict[str, set[AgentId]] = defaultdict(set)
        self._by_group: defaultdict[str, set[AgentId]] = defaultdict(set)
        self._available: set[AgentId] = set()
        #: Available agents with a free slot on the channel: the only ones `pick_agent`
        #: needs to score (the others fail ``eligible`` on capacity anyway).
        self._open: defaultdict[Channel, set[AgentId]] = defaultdict(set)
        self._profiles: dict[AgentId, _Profile] = {}
        #: Agents whose idle_since is NaN: their preference keys do not order, so
        #: `pick_agent` must then walk candidates in id order as it always did.
        self._unordered: set[AgentId] = set()
        #: Changes whenever a person joins or leaves, or their skills, groups or capacity
        #: change (not their state or load): what derived tables (``router.joint``) key on.
        self.profile_version = 0
        for agent in agents:
            self.put(agent)

    def put(self, agent: Agent) -> None:
        """Add `agent`, or replace the agent with the same id."""
        if agent.kind is AgentKind.BOT:
            self._bots[agent.id] = agent  # a kind is immutable: never among the people
            return
        old = self._agents.get(agent.id)
        if (
            old is None
            or (old.skills is not agent.skills and old.skills != agent.skills)
            or old.groups != agent.groups
            or old.capacity != agent.capacity
        ):
            self.profile_version += 1
        if old is not None and old.skills is not agent.skills:
            for skill in old.skills:
                self._by_skill[skill].discard(agent.id)
        self._agents[agent.id] = agent
        if old is None or old.skills is not agent.skills:
            for skill in agent.skills:
                self._by_skill[skill].add(agent.id)
        if old is None or old.groups != agent.groups:
            for group in old.groups if old is not None else ():
                self._by_group[group].discard(agent.id)
            for group in agent.groups:
                self._by_group[group].add(agent.id)
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
        self._profile(agent)

    def _profile(self, agent: Agent) -> None:
        """Keep what the scoring loop reads of `agent` (see ``_Profile``)."""
        idle_since = agent.idle_since
        self._profiles[agent.id] = (
            agent,
            agent.skills,
            idle_since,
            -idle_since,
            reversed_id(agent.id),
            sum(agent.capacity.values()),
            agent.contacts_in_hand,
        )
        if idle_since != idle_since:  # NaN
            self._unordered.add(agent.id)
        else:
            self._unordered.discard(agent.id)

    def remove(self, agent_id: AgentId) -> None:
        """Forget an agent (no error if unknown)."""
        self._bots.pop(agent_id, None)
        old = self._agents.pop(agent_id, None)
        if old is not None:
            self.profile_version += 1
            for skill in old.skills:
                self._by_skill[skill].discard(agent_id)
            for group in old.groups:
                self._by_group[group].discard(agent_id)
            for channel in old.capacity:
                self._open[channel].discard(agent_id)
        self._available.discard(agent_id)
        self._profiles.pop(agent_id, None)
        self._unordered.discard(agent_id)

    def get(self, agent_id: AgentId) -> Agent | None:
        """The agent (person or bot) with this id, if known."""
        agent = self._agents.get(agent_id)
        return agent if agent is not None or not self._bots else self._bots.get(agent_id)

    def __iter__(self) -> Iterator[Agent]:
        """The people (bots: `bots`)."""
        return iter(self._agents.values())

    def __len__(self) -> int:
        return len(self._agents)

    def bots(self) -> list[Agent]:
        """The bots, in id order."""
        return [self._bots[b] for b in sorted(self._bots)] if self._bots else []

    @property
    def available_count(self) -> int:
        """Agents (people and bots) who said they may receive offers."""
        bots = sum(1 for b in self._bots.values() if b.is_available) if self._bots else 0
        return len(self._available) + bots

    def _members(self, groups: frozenset[str]) -> set[AgentId]:
        """Agents in at least one of `groups`."""
        by_group = self._by_group
        return set().union(*(by_group.get(g, _NO_IDS) for g in groups))

    def _pools(self, required: Mapping[str, int]) -> list[_Ids]:
        """One id set per condition of `required` (each skill; the groups if named)."""
        by_skill = self._by_skill
        pools: list[_Ids] = [by_skill.get(skill, _NO_IDS) for skill in required]
        groups = groups_of(required)
        if groups is not None:
            pools.append(self._members(groups))
        return pools

    def candidates(self, required: Mapping[str, int]) -> list[Agent]:
        """Available agents holding every required skill at some level and in a required
        group (levels and capacity are left to ``eligible``), in id order for determinism."""
        pools = self._pools(required)
        if pools:
            pools.sort(key=len)
            ids = pools[0].intersection(self._available, *pools[1:])
        else:
            ids = set(self._available)
        return [self._agents[agent_id] for agent_id in sorted(ids)]

    def open_candidates(
        self, required: Mapping[str, int], channel: Channel
    ) -> tuple[int, list[Agent]]:
        """How many agents `candidates(required)` holds, and those of them with a free slot
        on `channel`, in id order: the same decisions for far less scoring on a busy floor."""
        pools = self._pools(required)
        ids: AbstractSet[AgentId]
        if pools:
            pools.sort(key=len)
            ids = pools[0].intersection(self._available, *pools[1:])
        else:
            ids = self._available
        open_ids = ids & self._open.get(channel, set())
        return len(ids), [self._agents[agent_id] for agent_id in sorted(open_ids)]

    def open_ids(self, required: Mapping[str, int], channel: Channel) -> AbstractSet[AgentId]:
        """Ids of the agents `open_candidates` returns, unordered and possibly a live view
        of an index: iterate it before the next change to the floor, never change it."""
        open_ids = self._open.get(channel)
        if not open_ids:
            return _NO_IDS
        if not required and groups_of(required) is None:
            return open_ids
        pools = self._pools(required)
        if len(pools) == 1:
            return pools[0] & open_ids  # iterates the smaller of the two
        pools.append(open_ids)
        pools.sort(key=len)
        return pools[0].intersection(*pools[1:])

    def considered(self, required: Mapping[str, int]) -> int:
        """How many available agents hold every required skill at some level and are in a
        required group (the first figure of `open_candidates`)."""
        pools = self._pools(required)
        if not pools:
            return len(self._available)
        pools.sort(key=len)
        return len(pools[0].intersection(self._available, *pools[1:]))

    def reserve(self, agent_id: AgentId, channel: Channel, now: float) -> None:
        """Count one more contact of `channel` in the agent's hand; it was just offered."""
        bot = self._bots.get(agent_id)
        if bot is not None:
            self._bots[agent_id] = replace(bot.with_load(channel, 1), idle_since=now)
            return
        agent = self._agents[agent_id]
        load = dict(agent.load)
        load[channel] = load.get(channel, 0) + 1
        self._reload(_with_load(agent, load, now), channel)

    def release(self, agent_id: AgentId, channel: Channel) -> None:
        """One contact of `channel` left the agent's hand."""
        bot = self._bots.get(agent_id)
        if bot is not None:
            self._bots[agent_id] = bot.with_load(channel, -1)
            return
        agent = self._agents.get(agent_id)
        if agent is None:
            return
        load = dict(agent.load)
        load[channel] = max(0, load.get(channel, 0) - 1)
        self._reload(_with_load(agent, load, agent.idle_since), channel)

    def _reload(self, agent: Agent, channel: Channel) -> None:
        """`put` for an agent whose load of `channel` (and idle time) alone changed: skills,
        state and the other channels' free slots are as before, so of all the indexes only
        the open-slot set of `channel` can change. Called on every offer and completion."""
        agent_id = agent.id
        self._agents[agent_id] = agent
        if agent.is_available and agent.free_slots(channel) > 0:
            self._open[channel].add(agent_id)
        else:
            open_ids = self._open.get(channel)
            if open_ids is not None:
                open_ids.discard(agent_id)
        # Skills, capacity and id are the old objects: keep their part of the profile.
        _, skills, _, _, rev_id, capacity, _ = self._profiles[agent_id]
        idle_since = agent.idle_since
        self._profiles[agent_id] = (
            agent,
            skills,
            idle_since,
            -idle_since,
            rev_id,
            capacity,
            agent.contacts_in_hand,
        )
        if idle_since != idle_since:  # NaN
            self._unordered.add(agent_id)
        else:
            self._unordered.discard(agent_id)


def _with_load(agent: Agent, load: Mapping[Channel, int], idle_since: float) -> Agent:
    """``replace(agent, load=load, idle_since=idle_since)`` at half the cost: `replace`
    walks the dataclass fields by name on every call; this hands them to the constructor.
    Every field of `Agent` must appear here, in order (a test names them all)."""
    return Agent(
        agent.id,
        agent.skills,
        agent.capacity,
        load,
        agent.state,
        idle_since,
        agent.version,
        agent.display_name,
        agent.away_reason,
        agent.kind,
        agent.state_since,
        agent.missed_offers,
        agent.groups,
    )


def queue_rank(contact: Contact, rule: Rule) -> tuple[int, float, float, str]:
    """Order of service: higher priority first, then nearest to breaching its channel's
    target, then earliest arrival, then id."""
    deadline = contact.arrived_at + rule.target_s(contact.channel)
    return (-contact.priority, deadline, contact.arrived_at, contact.id)


def queue_score(priority: int, deadline_ms: int) -> float:
    """The same order as one number, for the Redis sorted set (lower is served first).
    ``queues/lua/enqueue.lua`` computes it identically."""
    return float((MAX_PRIORITY - priority) * 10**13 + deadline_ms)


def rule_for(rules: RuleBook, issue: str) -> Rule:
    """The rule routing `issue`: its own, else the tenant's fallback, else the default."""
    return rules.for_issue(issue) or default_rule(issue)


def pick_agent(
    contact: Contact,
    floor: Floor,
    rule: Rule,
    now: float,
    taken: Mapping[tuple[AgentId, Channel], int] | None = None,
) -> Decision | None:
    """Best eligible agent for `contact` at `now`, or None; `taken` counts slots already
    handed out in this round. Agents who just declined the contact or let it expire come
    last: they get it again only when nobody else can take it."""
    held = _held_on(taken, contact.channel) if taken else None
    return _pick(contact, floor, rule, now, held)


def pick_bot(contact: Contact, floor: Floor, rule: Rule, now: float) -> Decision | None:
    """The bot for a contact sent to a bot first, or None when no bot can take it: an
    available bot that serves the contact's channel and holds every required skill. Agent
    groups (``Rule.agent_groups``) choose among people: a bot serves the whole tenant,
    whatever groups it is in. Bots have no capacity limit, so no slot is counted per round;
    the best score wins (its occupancy component spreads contacts over bots), then the
    smallest id."""
    bots = floor.bots()
    if not bots:
        return None
    required = Requirements(rule.requirements(contact, now))  # skills only: no groups
    holding = [b for b in bots if b.is_available and has_skills(b, required)]
    pool = [b for b in holding if b.free_slots(contact.channel) > 0]
    if not pool:
        return None
    ranked = sorted(
        ((score(b, contact, required, rule.weights, now), b) for b in pool),
        key=lambda entry: (-round(entry[0].total, 9), entry[1].id),
    )
    best_score, best = ranked[0]
    runner = (ranked[1][1].id, ranked[1][0]) if len(ranked) > 1 else None
    return Decision(
        contact=contact,
        agent=best,
        score=best_score,
        considered=len(holding),
        eligible=len(pool),
        runner_up=runner,
        step=rule.step_at(contact.waited_s(now), contact.signals),
        required=required,
    )


def _held_on(taken: Mapping[tuple[AgentId, Channel], int], channel: Channel) -> dict[AgentId, int]:
    """`taken` for one channel, by agent id: one string lookup per candidate, not a tuple
    built and hashed. Values are read back through `taken` itself, key for key."""
    return {agent_id: taken.get((agent_id, channel), 0) for agent_id, ch in taken if ch == channel}


def _pick(
    contact: Contact, floor: Floor, rule: Rule, now: float, held: Mapping[AgentId, int] | None
) -> Decision | None:
    """`pick_agent` with the round's taken slots already narrowed to the contact's channel.

    The winner is the maximum of the preference key (not declined, score rounded to 9
    digits, longest idle, reversed id). Ids are unique, so without NaN in the key it is a
    strict total order and the best two do not depend on the order candidates are walked
    in: the candidate ids are not sorted. A NaN (from non-finite weights or idle times)
    makes the order partial; then the walk is redone in id order, as it always was."""
    required = rule.requirements(contact, now)
    ids = floor.open_ids(required, contact.channel)
    if not ids:
        return None
    profiles = floor._profiles
    ranked = _rank(ids, profiles, contact, required, rule.weights, now, held)
    if ranked is None:
        return None
    if not ranked[3] or floor._unordered:
        ranked = _rank(sorted(ids), profiles, contact, required, rule.weights, now, held)
        assert ranked is not None  # the same candidates, in another order
    best, second, count, _ = ranked
    winner = best[1][0]
    return Decision(
        contact=contact,
        agent=winner,
        score=score(winner, contact, required, rule.weights, now, best[2]),
        considered=floor.considered(required),
        eligible=count,
        runner_up=(
            (second[1][0].id, score(second[1][0], contact, required, rule.weights, now, second[2]))
            if second is not None
            else None
        ),
        step=rule.step_at(contact.waited_s(now), contact.signals),
        required=required,
    )


def _rank(
    ids: Iterable[AgentId],
    profiles: Mapping[AgentId, _Profile],
    contact: Contact,
    required: Mapping[str, int],
    weights: Weights,
    now: float,
    held: Mapping[AgentId, int] | None,
) -> tuple[_Entry, _Entry | None, int, bool] | None:
    """The best two eligible candidates among `ids` (None if none), how many were eligible,
    and whether every key was free of NaN (so that the walk order did not matter).

    Eligibility and the score total are those of ``router.scoring.eligible`` and
    ``router.scoring.score``, inlined: the same operations on the same operands in the same
    order, so the totals are bit-identical. Every id here is an available agent with a
    free slot on the channel (``Floor.open_ids``); only slots taken this round, and skill
    levels, remain to check."""
    channel = contact.channel
    items = tuple(required.items())
    levels_max = MAX_PROFICIENCY * len(items)
    w_proficiency, w_idle = weights.proficiency, weights.idle
    w_occupancy, w_affinity = weights.occupancy, weights.affinity
    horizon_s = weights.idle_horizon_s
    last, known, declined = contact.last_agent_id, contact.known_agent_ids, contact.declined_by
    best: _Entry | None = None
    second: _Entry | None = None
    best_total = 0.0
    # The runner-up's (fresh, total - margin): a candidate below it cannot enter the best
    # two, so it needs no rounding and no key. None yet: nobody is below it.
    bar_fresh, bar_total = False, -math.inf
    count = 0
    ordered = True
    for agent_id in ids:
        profile = profiles[agent_id]
        agent, skills, idle_since, neg_idle, rev_id, capacity, in_hand = profile
        taken = held.get(agent_id, 0) if held else 0
        if taken and agent.free_slots(channel) <= taken:
            continue
        levels = 0
        skilled = True
        for skill, level in items:
            have = skills.get(skill, 0)
            if have < level:
                skilled = False
                break
            levels += MAX_PROFICIENCY if have > MAX_PROFICIENCY else have  # min(have, MAX)
        if not skilled:
            continue
        count += 1
        proficiency = levels / levels_max if items else 0.0
        idle = now - idle_since
        idle = (idle if idle > 0.0 else 0.0) / horizon_s  # max(0.0, idle) / horizon
        idle = idle if idle < 1.0 else 1.0  # min(1.0, idle)
        if capacity:
            share = (in_hand + taken) / capacity
            occupancy = 1.0 - (share if share < 1.0 else 1.0)
        else:
            occupancy = 0.0
        if last is not None and agent_id == last:
            affinity = 1.0
        elif agent_id in known:
            affinity = 0.5
        else:
            affinity = 0.0
        total = (
            w_proficiency * proficiency
            + w_idle * idle
            + w_occupancy * occupancy
            + w_affinity * affinity
        )
        if total != total:  # NaN: the keys no longer form a total order
            ordered = False
        fresh = agent_id not in declined
        if fresh < bar_fresh or (fresh == bar_fresh and total < bar_total):
            continue
        key = (fresh, round(total, 9), neg_idle, rev_id)
        if best is None or key > best[0]:
            second = best  # two statements: mypyc mis-narrows the tuple assignment
            best = (key, profile, taken)
            if second is not None:
                bar_fresh, bar_total = second[0][0], _bar(best_total)
            best_total = total
        elif second is None or key > second[0]:
            second = (key, profile, taken)
            bar_fresh, bar_total = fresh, _bar(total)
    if best is None:
        return None
    return best, second, count, ordered


def top_candidates(
    floor: Floor,
    contact: Contact,
    required: Mapping[str, int],
    weights: Weights,
    now: float,
    k: int,
    among: AbstractSet[AgentId] | None = None,
    exclude: AgentId | None = None,
) -> list[Agent] | None:
    """The `k` best eligible people for `contact` (not counting `exclude`; only `among` if
    given), best first by the preference key `pick_agent` uses (not declined, score rounded
    to 9 digits, longest idle, smallest id), on the floor's snapshot (no slots taken).

    The same inlined scoring as `_rank`, keeping `k` entries instead of two, with the
    k-th's bar: what the explanation of a decision lists, at a fraction of scoring every
    candidate with ``router.scoring.score``. None where a NaN makes the order partial (the
    caller then sorts the slow way)."""
    if k <= 0:
        return []
    if floor._unordered:
        return None
    ids: Iterable[AgentId] = floor.open_ids(required, contact.channel)
    if among is not None:
        ids = [a for a in ids if a in among]
    profiles = floor._profiles
    items = tuple(required.items())
    levels_max = MAX_PROFICIENCY * len(items)
    w_proficiency, w_idle = weights.proficiency, weights.idle
    w_occupancy, w_affinity = weights.occupancy, weights.affinity
    horizon_s = weights.idle_horizon_s
    last, known, declined = contact.last_agent_id, contact.known_agent_ids, contact.declined_by
    heap: list[tuple[tuple[bool, float, float, str], float, Agent]] = []  # min-heap
    bar_fresh, bar_total = False, -math.inf
    for agent_id in ids:
        if agent_id == exclude:
            continue
        agent, skills, idle_since, neg_idle, rev_id, capacity, in_hand = profiles[agent_id]
        levels = 0
        skilled = True
        for skill, level in items:
            have = skills.get(skill, 0)
            if have < level:
                skilled = False
                break
            levels += MAX_PROFICIENCY if have > MAX_PROFICIENCY else have
        if not skilled:
            continue
        proficiency = levels / levels_max if items else 0.0
        idle = now - idle_since
        idle = (idle if idle > 0.0 else 0.0) / horizon_s
        idle = idle if idle < 1.0 else 1.0
        if capacity:
            share = in_hand / capacity
            occupancy = 1.0 - (share if share < 1.0 else 1.0)
        else:
            occupancy = 0.0
        if last is not None and agent_id == last:
            affinity = 1.0
        elif agent_id in known:
            affinity = 0.5
        else:
            affinity = 0.0
        total = (
            w_proficiency * proficiency
            + w_idle * idle
            + w_occupancy * occupancy
            + w_affinity * affinity
        )
        if total != total:  # NaN: no total order
            return None
        fresh = agent_id not in declined
        if fresh < bar_fresh or (fresh == bar_fresh and total < bar_total):
            continue
        entry = ((fresh, round(total, 9), neg_idle, rev_id), total, agent)
        if len(heap) < k:
            heapq.heappush(heap, entry)
        elif entry[0] > heap[0][0]:
            heapq.heapreplace(heap, entry)
        else:
            continue
        if len(heap) == k:
            kth = heap[0]
            bar_fresh, bar_total = kth[0][0], _bar(kth[1])
    return [agent for _, _, agent in sorted(heap, key=lambda e: e[0], reverse=True)]


def _bar(total: float) -> float:
    """A raw total below which another rounds (``round(x, 9)``) strictly lower than `total`
    does; -inf where that cannot be promised (|total| >= _ROUND_SAFE, inf, NaN).

    ``round(x, 9)`` is the double nearest the multiple of 1e-9 nearest `x`. If
    ``x < total - _ROUND_MARGIN`` (2e-9; the subtraction's error is below 1.2e-10 under
    1e6), `x` is more than 1.5e-9 below `total`, so its multiple of 1e-9 is at least 1e-9
    below that of `total`; under 2e6 doubles are 2.4e-10 apart or closer, so the two
    multiples round to different doubles, in the same order. An `x` below -2e6 rounds
    below -1e6 anyway."""
    if -_ROUND_SAFE < total < _ROUND_SAFE:
        return total - _ROUND_MARGIN
    return -math.inf


def assign(
    contacts: Sequence[Contact], floor: Floor, rules: RuleBook, now: float
) -> list[Decision]:
    """Greedy assignment in queue order: each contact gets the best agent still free.

    Does not change `floor`; a caller applies the decisions it manages to commit.
    """
    ranked = [
        (queue_rank(c, rule), c, rule) for c in contacts for rule in (rule_for(rules, c.issue),)
    ]
    ranked.sort(key=_first)  # stable: equal ranks keep input order, as sorting contacts did
    held: dict[Channel, dict[AgentId, int]] = {}
    decisions: list[Decision] = []
    for _, contact, rule in ranked:
        channel = contact.channel
        decision = _pick(contact, floor, rule, now, held.get(channel))
        if decision is not None:
            on_channel = held.setdefault(channel, {})
            agent_id = decision.agent.id
            on_channel[agent_id] = on_channel.get(agent_id, 0) + 1
            decisions.append(decision)
    return decisions


def _first(
    entry: tuple[tuple[int, float, float, str], Contact, Rule],
) -> tuple[int, float, float, str]:
    return entry[0]
