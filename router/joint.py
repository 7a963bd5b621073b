"""Joint assignment: give several waiting contacts to several free agents at once so that
the total score is maximal, instead of first come first served (`router.assign.assign`).

Same eligibility (`router.scoring.eligible`, `Rule.requirements`) and score
(`router.scoring.score`) as `pick_agent`, so the engine can switch per pass; the decisions
are committed through the same reservation scripts as any offer.

**Objective.** Priority classes are solved one after the other, highest first, each over the
capacity the classes above left: a class gets exactly what it would get if no lower class
existed, so a higher-priority contact never loses an agent to a lower one (``priority_first=
False`` solves all contacts as one class). Within a class, lexicographically: (1) serve as
many contacts as possible; (2) use as few agents who declined the contact as possible (they
come last, as in `pick_agent`); (3) maximise the total score; (4) prefer, per contact, the
agents `pick_agent` would prefer (longer idle, then smaller id). An unserved contact scores 0.
The score is the snapshot score (`score(..., taken=0)`): a joint pass has no order, so the
in-round occupancy term a greedy pass adds for a second slot of one agent does not apply.

**Integer costs.** A min-cost flow (OR-Tools) source → contact (cap 1) → agent-channel node
(cap = free slots of that channel) → sink, solved as a maximum flow of minimum cost, which
is (1). Arcs of one contact come best first; ``r`` is an arc's position among that
contact's arcs of equal score units ``s = round(score · 10^d)`` (``r < R``, usually 0):
``cost = F·declined + (s_top − s)·T + r`` with ``T = n·R`` and ``F = n·(s_top − s_bottom
+ 1)·T`` (n contacts). The ranks of n arcs sum to less than T, so they never outweigh one
score unit; n arcs' scores and ranks stay below F, so they never outweigh one declined
agent. ``d`` starts at 6 and drops only if ``cost · nodes`` would not fit in 62 bits, so
totals are exact to ``n/2·10^-d``.

**Pruning that keeps the optimum.** A contact's preference list is cut to a prefix (in its
own order) holding ``q`` free slots of its channel. Two certificates make the cut exact:

* *Swap bound.* Let ``n_ch`` be the class's contacts on the contact's channel. If the prefix
  holds ≥ ``n_ch`` slots, take any optimum that sends the contact ``c`` past its prefix: the
  other ``n_ch − 1`` contacts of that channel fill at most ``n_ch − 1`` of the prefix's
  slots (other channels use other nodes), so one prefix slot is free; moving ``c`` there
  serves as many contacts and loses no weight. Each move puts one more contact inside its
  prefix, so an optimum inside the pruned graph exists. This holds for capacity > 1: the
  bound counts slots, not agents.
* *Dual check.* After solving the pruned graph, a cut contact whose prefix still has an
  agent-channel node with a free slot is provably fine: complementary slackness gives that
  node a zero dual, so the contact's dual is at least the weight of its last kept arc, which
  is at least the weight of any cut arc; every cut arc's dual constraint holds, and the
  pruned optimum is optimal for the full graph (the assignment LP is totally unimodular).
  Contacts are either uncut, past the swap bound, or pass this check, so the two combine.

So lists start at the contacts sharing them plus a margin, and only contacts failing the
dual check get longer lists (× ``LIST_GROWTH``, capped at the swap bound) before a re-solve. Scores
are computed with numpy once per group of contacts sharing requirements, weights and
channel (affinity and declines adjust single pairs).

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
import weakref
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from ortools.graph.python import min_cost_flow

from router.assign import Decision, Floor, assign, queue_rank, rule_for
from router.domain import MAX_PROFICIENCY, Agent, AgentId, Channel, Contact
from router.rules import Rule, RuleBook, Weights, groups_of
from router.scoring import Score, score

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

#: Extra slots a list starts with beyond the contacts sharing it: LIST_MARGIN plus twice
#: the square root of the contacts competing on its channel (measured: one or two solves).
LIST_MARGIN = 8
#: Factor by which a list that fails the dual check grows before the next solve.
LIST_GROWTH = 4
#: Finest score resolution in the integer costs (decimal digits).
MAX_DIGITS = 6
_COST_BITS = 62


@dataclass(slots=True)
class _Pool:
    """The available agents as arrays, in tie order (longest idle first, then id)."""

    agents: list[Agent]
    index: dict[AgentId, int]
    idle: Floats
    occupancy: Floats
    skills: dict[str, int]
    #: Per required skill (its number in `skills`): every agent's level; the level capped
    #: at MAX_PROFICIENCY; whether the agent holds it at all.
    levels: Ints
    capped: Ints
    held: Bools
    free: dict[Channel, Ints]
    #: The normalised idle component per idle horizon (seconds), computed once per pass.
    idle_by_horizon: dict[float, Floats] = field(default_factory=dict)
    #: Eligibility conditions shared by a class's groups: a free slot on a channel (by
    #: channel), a skill at a level (by (skill number, level)); cleared when slots change.
    conditions: dict[object, Bools] = field(default_factory=dict)


@dataclass(slots=True)
class _Group:
    """Contacts sharing requirements, weights and channel: one score vector, one list."""

    channel: Channel
    required: Mapping[str, int]
    weights: Weights
    mask: Bools
    base: Floats
    holders: int
    #: Eligible agents (``mask.sum()``).
    eligible: int
    #: The normalised proficiency and idle components behind `base` (for Decision scores).
    proficiency: Floats
    idle: Floats
    contacts: list[int] = field(default_factory=list)
    prefix: Ints = field(default_factory=lambda: np.zeros(0, np.int64))
    #: Free slots of the prefix's agents (the pool's free slots do not change in a class).
    prefix_slots: int = 0
    threshold: float = -np.inf
    complete: bool = False


@dataclass(slots=True)
class _List:
    """One contact's kept candidates, best first."""

    agents: Ints
    scores: Floats
    fresh: Bools
    truncated: bool
    slots: int


def joint_assign(
    contacts: Sequence[Contact],
    floor: Floor,
    rules: RuleBook,
    now: float,
    *,
    priority_first: bool = True,
) -> list[Decision]:
    """Assign `contacts` jointly (see the module docstring for the objective), returned in
    queue order like `assign`. Does not change `floor`."""
    ranked = sorted(contacts, key=lambda c: queue_rank(c, rule_for(rules, c.issue)))
    if len(ranked) <= 1:
        return assign(ranked, floor, rules, now)
    required = [rule_for(rules, c.issue).requirements(c, now) for c in ranked]
    pool = _build_pool(floor, ranked, required, now)
    chosen: dict[int, tuple[int, _List, _Group]] = {}
    for members in _classes(ranked, priority_first):
        groups = _build_groups(pool, ranked, required, rules, members, now)
        chosen.update(_solve_class(pool, ranked, groups, members))
    decisions = []
    for i, contact in enumerate(ranked):
        if i in chosen:
            decisions.append(_decision(pool, contact, rules, now, required[i], *chosen[i]))
    return decisions


def _classes(ranked: Sequence[Contact], priority_first: bool) -> list[list[int]]:
    if not priority_first:
        return [list(range(len(ranked)))]
    by_priority: defaultdict[int, list[int]] = defaultdict(list)
    for i, contact in enumerate(ranked):
        by_priority[contact.priority].append(i)
    return [by_priority[p] for p in sorted(by_priority, reverse=True)]


@dataclass(slots=True)
class _Table:
    """What a pass reads of every person of a floor that only changes with their profile
    (``Floor.profile_version``): skill levels as a matrix and total capacity, by row."""

    version: int
    row: dict[AgentId, int]
    column: dict[str, int]
    levels: Ints
    capacity: Ints
    by_channel: dict[Channel, Ints]


#: One table per floor, rebuilt when the floor's profiles change (weak: a floor that is
#: gone takes its table with it).
_TABLES: weakref.WeakKeyDictionary[Floor, _Table] = weakref.WeakKeyDictionary()


def _table(floor: Floor) -> _Table:
    table = _TABLES.get(floor)
    if table is not None and table.version == floor.profile_version:
        return table
    people = list(floor)
    column: dict[str, int] = {}
    for agent in people:
        for skill in agent.skills:
            column.setdefault(skill, len(column))
    levels = np.zeros((len(people), len(column)), np.int64)
    for r, agent in enumerate(people):
        for skill, level in agent.skills.items():
            levels[r, column[skill]] = level
    table = _Table(
        version=floor.profile_version,
        row={agent.id: r for r, agent in enumerate(people)},
        column=column,
        levels=levels,
        capacity=np.fromiter((sum(a.capacity.values()) for a in people), np.int64, len(people)),
        by_channel={
            ch: np.fromiter((a.capacity.get(ch, 0) for a in people), np.int64, len(people))
            for ch in Channel
        },
    )
    _TABLES[floor] = table
    return table


def _build_pool(
    floor: Floor, ranked: Sequence[Contact], required: Sequence[Mapping[str, int]], now: float
) -> _Pool:
    table = _table(floor)
    by_id = floor.candidates({})  # available people, in id order
    n = len(by_id)
    idle_since = np.fromiter((a.idle_since for a in by_id), np.float64, n)
    order = np.argsort(idle_since, kind="stable")  # longest idle first, then id
    agents = [by_id[k] for k in order]
    rows = np.fromiter((table.row[a.id] for a in agents), np.int64, n)
    skills: dict[str, int] = {}
    for req in required:
        for skill in req:
            skills.setdefault(skill, len(skills))
    levels = np.zeros((len(skills), n), np.int64)
    for skill, k in skills.items():
        c = table.column.get(skill)
        if c is not None:  # else nobody holds it: level 0
            levels[k] = table.levels[rows, c]
    total = table.capacity[rows]
    loads = [a.load for a in agents]
    in_hand = np.fromiter((sum(load.values()) for load in loads), np.int64, n)
    occupancy = np.zeros(n, np.float64)
    some = total > 0
    occupancy[some] = 1.0 - np.minimum(1.0, in_hand[some] / total[some])
    channels = sorted({c.channel for c in ranked})
    return _Pool(
        agents=agents,
        index={a.id: i for i, a in enumerate(agents)},
        idle=now - idle_since[order],
        occupancy=occupancy,
        skills=skills,
        levels=levels,
        capped=np.minimum(levels, MAX_PROFICIENCY),
        held=levels > 0,
        free={  # Agent.free_slots of a person, for every agent at once
            ch: np.maximum(
                0,
                table.by_channel[ch][rows]
                - np.fromiter((load.get(ch, 0) for load in loads), np.int64, n),
            )
            for ch in channels
        },
    )


def _build_groups(
    pool: _Pool,
    ranked: Sequence[Contact],
    required: Sequence[Mapping[str, int]],
    rules: RuleBook,
    members: Sequence[int],
    now: float,
) -> list[_Group]:
    groups: dict[tuple[object, ...], _Group] = {}
    for i in members:
        contact, req = ranked[i], required[i]
        weights = rule_for(rules, contact.issue).weights
        key = (tuple(sorted(req.items())), groups_of(req), weights, contact.channel)
        if key not in groups:
            groups[key] = _new_group(pool, contact.channel, req, weights)
        groups[key].contacts.append(i)
    return list(groups.values())


def _new_group(pool: _Pool, channel: Channel, req: Mapping[str, int], w: Weights) -> _Group:
    """Eligibility and base score (no affinity) over the pool, as `router.scoring` does."""
    n = len(pool.agents)
    conditions = pool.conditions
    is_open = conditions.get(channel)
    if is_open is None:
        is_open = conditions[channel] = pool.free[channel] > 0
    mask = is_open.copy()
    holders = np.ones(n, np.bool_)
    proficiency = np.zeros(n, np.int64)
    for skill, level in req.items():
        k = pool.skills[skill]
        at_least = conditions.get((k, level))
        if at_least is None:
            at_least = conditions[(k, level)] = pool.levels[k] >= level
        mask &= at_least
        holders &= pool.held[k]
        proficiency += pool.capped[k]
    groups = groups_of(req)
    if groups is not None:
        member = np.fromiter((not a.groups.isdisjoint(groups) for a in pool.agents), np.bool_, n)
        mask &= member
        holders &= member
    prof = proficiency / (MAX_PROFICIENCY * len(req)) if req else np.zeros(n)
    idle = pool.idle_by_horizon.get(w.idle_horizon_s)
    if idle is None:
        idle = np.minimum(1.0, np.maximum(0.0, pool.idle) / w.idle_horizon_s)
        pool.idle_by_horizon[w.idle_horizon_s] = idle
    base = w.proficiency * prof + w.idle * idle + w.occupancy * pool.occupancy
    eligible, held = int(np.count_nonzero(mask)), int(np.count_nonzero(holders))
    return _Group(channel, req, w, mask, base, held, eligible, prof, idle)


def _extend(group: _Group, pool: _Pool, slots: int) -> None:
    """Make the group's prefix (best first) hold at least `slots` free slots, or all."""
    if group.complete or (group.prefix.size and group.prefix_slots >= slots):
        return
    free = pool.free[group.channel]
    eligible = np.flatnonzero(group.mask)
    rounded = np.round(group.base[eligible], 9)
    if slots >= free[eligible].sum() or slots >= eligible.size:
        group.threshold, group.complete = -np.inf, True
        keep = eligible
    else:
        # Every eligible agent has >= 1 slot: the `slots` best hold enough. Ties at the
        # threshold all come in, so the prefix is exact in preference order.
        group.threshold = float(-np.partition(-rounded, slots - 1)[slots - 1])
        keep = eligible[rounded >= group.threshold]
        group.complete = keep.size == eligible.size
    order = np.argsort(-np.round(group.base[keep], 9), kind="stable")
    group.prefix = keep[order]
    group.prefix_slots = int(free[group.prefix].sum())


def _special(pool: _Pool, group: _Group, contact: Contact) -> tuple[int, ...]:
    """Eligible agents whose score or rank differs for this contact (affinity, declines)."""
    named = (contact.last_agent_id, *contact.known_agent_ids, *contact.declined_by)
    found = {pool.index[a] for a in named if a is not None and a in pool.index}
    return tuple(sorted(a for a in found if group.mask[a]))


def _contact_list(
    pool: _Pool, group: _Group, contact: Contact, want: int, special: tuple[int, ...]
) -> _List:
    """The contact's best candidates holding `want` slots: the group's prefix adjusted for
    its affinity and declines, always an exact prefix of its own preference order."""
    free = pool.free[group.channel]
    agents = group.prefix
    scores = group.base[agents]
    fresh = np.ones(agents.size, np.bool_)
    if special:
        agents = np.union1d(agents, np.array(special, np.int64))
        scores = group.base[agents]
        fresh = np.ones(agents.size, np.bool_)
        for a in special:
            k = int(np.searchsorted(agents, a))
            agent_id = pool.agents[a].id
            if agent_id == contact.last_agent_id:
                scores[k] += group.weights.affinity * 1.0
            elif agent_id in contact.known_agent_ids:
                scores[k] += group.weights.affinity * 0.5
            fresh[k] = agent_id not in contact.declined_by
        rounded = np.round(scores, 9)
        if not group.complete:
            # Past the group's threshold lie agents this list does not see: cut there.
            keep = fresh & (rounded >= group.threshold)
            agents, scores, fresh, rounded = agents[keep], scores[keep], fresh[keep], rounded[keep]
        order = np.lexsort((agents, -rounded, ~fresh))
        agents, scores, fresh = agents[order], scores[order], fresh[order]
    slots = np.cumsum(free[agents])
    size = min(agents.size, int(np.searchsorted(slots, want)) + 1)
    truncated = size < agents.size or not group.complete
    total = int(slots[size - 1]) if size else 0
    return _List(agents[:size], scores[:size], fresh[:size], truncated, total)


def _solve_class(
    pool: _Pool, ranked: Sequence[Contact], groups: list[_Group], members: Sequence[int]
) -> dict[int, tuple[int, _List, _Group]]:
    """Solve one priority class, growing only the lists that fail the dual check; take
    the capacity it uses out of the pool."""
    per_channel: defaultdict[Channel, int] = defaultdict(int)
    for i in members:
        per_channel[ranked[i].channel] += 1
    bound = {i: per_channel[ranked[i].channel] for i in members}
    group_of = {i: g for g in groups for i in g.contacts}
    want = {
        i: min(bound[i], len(g.contacts) + LIST_MARGIN + 2 * math.isqrt(bound[i]))
        for i, g in group_of.items()
    }
    special = {i: _special(pool, g, ranked[i]) for i, g in group_of.items()}
    while True:
        lists: dict[int, _List] = {}
        shared: dict[tuple[int, int], _List] = {}  # plain contacts of a group share lists
        for k, g in enumerate(groups):
            for i in g.contacts:
                declined = [pool.index[a] for a in ranked[i].declined_by if a in pool.index]
                extra = int(pool.free[g.channel][declined].sum()) if declined else 0
                _extend(g, pool, want[i] + extra)
                if special[i]:
                    lists[i] = _contact_list(pool, g, ranked[i], want[i], special[i])
                    continue
                if (k, want[i]) not in shared:
                    shared[(k, want[i])] = _contact_list(pool, g, ranked[i], want[i], ())
                lists[i] = shared[(k, want[i])]
        match, has_room = _min_cost_flow(pool, ranked, lists)
        failing = [
            i
            for i, kept in lists.items()
            if kept.truncated and kept.slots < bound[i] and not has_room[i]
        ]
        if not failing:
            break
        for i in failing:
            want[i] = min(bound[i], LIST_GROWTH * max(want[i], lists[i].slots))
    for i, a in match.items():
        pool.free[ranked[i].channel][a] -= 1
    pool.conditions.clear()  # "a free slot on the channel" changed
    return {i: (a, lists[i], group_of[i]) for i, a in match.items()}


def _min_cost_flow(
    pool: _Pool, ranked: Sequence[Contact], lists: Mapping[int, _List]
) -> tuple[dict[int, int], dict[int, bool]]:
    """Maximum flow of minimum cost over the kept arcs: the contact → agent matches, and
    for each contact whether a node of its list kept a free slot (the dual check)."""
    order = list(lists)
    n = len(order)
    sizes = np.array([lists[i].agents.size for i in order], np.int64)
    arc_contact = np.repeat(np.arange(n, dtype=np.int64), sizes)
    arc_agent = np.concatenate([lists[i].agents for i in order])
    arc_score = np.concatenate([lists[i].scores for i in order])
    arc_fresh = np.concatenate([lists[i].fresh for i in order])
    if arc_agent.size == 0:
        return {}, {i: False for i in order}
    channels = sorted({ranked[i].channel for i in order})
    channel_no = {ch: k for k, ch in enumerate(channels)}
    contact_channel = np.array([channel_no[ranked[i].channel] for i in order], np.int64)
    keys, arc_node = np.unique(
        arc_agent * len(channels) + np.repeat(contact_channel, sizes), return_inverse=True
    )
    free = np.stack([pool.free[ch] for ch in channels], axis=1)
    node_free = free[keys // len(channels), keys % len(channels)]
    m = keys.size
    source, sink, first_contact, first_node = 0, 1, 2, 2 + n
    tails = [np.full(n, source), first_contact + arc_contact, first_node + np.arange(m)]
    heads = [first_contact + np.arange(n), first_node + arc_node, np.full(m, sink)]
    costs = _integer_costs(arc_score, arc_fresh, arc_contact, n, first_node + m)
    flow = min_cost_flow.SimpleMinCostFlow()
    flow.add_arcs_with_capacity_and_unit_cost(
        np.concatenate(tails).astype(np.int32),
        np.concatenate(heads).astype(np.int32),
        np.concatenate([np.ones(n + arc_agent.size, np.int64), node_free]),
        np.concatenate([np.zeros(n, np.int64), costs, np.zeros(m, np.int64)]),
    )
    flow.set_nodes_supplies(np.array([source, sink], np.int32), np.array([n, -n], np.int64))
    status = flow.solve_max_flow_with_min_cost()
    if status != flow.OPTIMAL:
        raise RuntimeError(f"min-cost flow failed with status {status}")
    used = flow.flows(np.arange(n, n + arc_agent.size, dtype=np.int32)) > 0
    match = {order[c]: int(a) for c, a in zip(arc_contact[used], arc_agent[used], strict=True)}
    room = np.bincount(arc_node[used], minlength=m) < node_free
    has_room = np.bincount(arc_contact, weights=room[arc_node], minlength=n) > 0
    return match, {i: bool(has_room[c]) for c, i in enumerate(order)}


def _integer_costs(scores: Floats, fresh: Bools, arc_contact: Ints, n: int, nodes: int) -> Ints:
    """Arc costs encoding (declined, score, rank) lexicographically (see the module doc).
    Arcs come grouped by contact, best first; the rank counts only within a run of equal
    score units, so it is usually 0 and the costs stay small."""
    positions = np.arange(scores.size, dtype=np.int64)
    for digits in range(MAX_DIGITS, -1, -1):
        units = np.rint(scores * 10**digits).astype(np.int64)
        new_run = np.ones(scores.size, np.bool_)
        new_run[1:] = (
            (arc_contact[1:] != arc_contact[:-1])
            | (units[1:] != units[:-1])
            | (fresh[1:] != fresh[:-1])
        )
        rank = positions - np.maximum.accumulate(np.where(new_run, positions, 0))
        tie_span = n * (int(rank.max()) + 1)
        top, bottom = int(units.max()), int(units.min())
        tier = n * (top - bottom + 1) * tie_span if not fresh.all() else 0
        largest = tier + (top - bottom) * tie_span + tie_span
        if largest * (nodes + 1) < 2**_COST_BITS:
            declined = (~fresh).astype(np.int64)
            return np.asarray(declined * tier + (top - units) * tie_span + rank, np.int64)
    raise ValueError(f"joint assignment too large for integer costs ({n} contacts)")


def _decision(
    pool: _Pool,
    contact: Contact,
    rules: RuleBook,
    now: float,
    required: Mapping[str, int],
    agent_no: int,
    kept: _List,
    group: _Group,
) -> Decision:
    rule: Rule = rule_for(rules, contact.issue)
    agent = pool.agents[agent_no]
    # The list is in preference order: the runner-up is its first agent other than the chosen.
    runner = next((a for a in kept.agents[:2].tolist() if a != agent_no), None)
    runner_up: tuple[AgentId, Score] | None = None
    if runner is not None:
        other = pool.agents[runner]
        runner_up = (other.id, _score(pool, group, runner, contact, required, now))
    return Decision(
        contact=contact,
        agent=agent,
        score=_score(pool, group, agent_no, contact, required, now),
        considered=group.holders,
        eligible=group.eligible,
        runner_up=runner_up,
        step=rule.step_at(contact.waited_s(now), contact.signals),
        required=required,
    )


def _score(
    pool: _Pool, group: _Group, a: int, contact: Contact, required: Mapping[str, int], now: float
) -> Score:
    """``router.scoring.score`` of pool agent `a`, from the group's components: the same
    operations on the same operands, so the same floats (a test compares them)."""
    agent = pool.agents[a]
    proficiency, idle = float(group.proficiency[a]), float(group.idle[a])
    if not math.isfinite(idle):  # numpy and Python treat NaN apart in max(): ask score()
        return score(agent, contact, required, group.weights, now)
    occupancy = float(pool.occupancy[a])
    if contact.last_agent_id is not None and agent.id == contact.last_agent_id:
        affinity = 1.0
    elif agent.id in contact.known_agent_ids:
        affinity = 0.5
    else:
        affinity = 0.0
    w = group.weights
    total = (
        w.proficiency * proficiency
        + w.idle * idle
        + w.occupancy * occupancy
        + w.affinity * affinity
    )
    return Score(total, proficiency, idle, occupancy, affinity)


__all__ = ["joint_assign"]
