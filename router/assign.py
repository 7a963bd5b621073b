"""Assignment: which waiting contacts go to which agents at one decision moment.

`Floor` holds one tenant's agents in memory, indexed by skill, so that finding the
candidates for a contact does not scan the whole floor. `assign` walks the waiting
contacts in queue order (priority, then nearest to breaching its channel's target) and
gives each the best eligible agent, counting the slots it has already handed out in this
round. It is pure: the live engine commits its decisions through Redis scripts that
re-check them, and the simulator applies them to its own floor.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from router.domain import MAX_PRIORITY, Agent, AgentId, Channel, Contact
from router.rules import Rule, RuleBook, default_rule
from router.scoring import Score, eligible, preference, score


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
    """One tenant's agents, indexed by skill and availability. In-memory, no I/O."""

    def __init__(self, agents: Iterable[Agent] = ()) -> None:
        self._agents: dict[AgentId, Agent] = {}
        self._by_skill: defaultdict[str, set[AgentId]] = defaultdict(set)
        self._available: set[AgentId] = set()
        #: Available agents with a free slot on the channel: the only ones `pick_agent`
        #: needs to score (the others fail ``eligible`` on capacity anyway).
        self._open: defaultdict[Channel, set[AgentId]] = defaultdict(set)
        for agent in agents:
            self.put(agent)

    def put(self, agent: Agent) -> None:
        """Add `agent`, or replace the agent with the same id."""
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
        """Forget an agent (no error if unknown)."""
        old = self._agents.pop(agent_id, None)
        if old is not None:
            for skill in old.skills:
                self._by_skill[skill].discard(agent_id)
            for channel in old.capacity:
                self._open[channel].discard(agent_id)
        self._available.discard(agent_id)

    def get(self, agent_id: AgentId) -> Agent | None:
        """The agent with this id, if known."""
        return self._agents.get(agent_id)

    def __iter__(self) -> Iterator[Agent]:
        return iter(self._agents.values())

    def __len__(self) -> int:
        return len(self._agents)

    @property
    def available_count(self) -> int:
        """Agents who said they may receive offers."""
        return len(self._available)

    def candidates(self, required: Mapping[str, int]) -> list[Agent]:
        """Available agents holding every required skill at some level (levels and
        capacity are left to ``eligible``), in id order for determinism."""
        if required:
            pools = sorted((self._by_skill.get(skill, set()) for skill in required), key=len)
            ids = pools[0].intersection(self._available, *pools[1:])
        else:
            ids = set(self._available)
        return [self._agents[agent_id] for agent_id in sorted(ids)]

    def open_candidates(
        self, required: Mapping[str, int], channel: Channel
    ) -> tuple[int, list[Agent]]:
        """How many agents `candidates(required)` holds, and those of them with a free slot
        on `channel`, in id order: the same decisions for far less scoring on a busy floor."""
        if required:
            pools = sorted((self._by_skill.get(skill, set()) for skill in required), key=len)
            ids = pools[0].intersection(self._available, *pools[1:])
        else:
            ids = self._available
        open_ids = ids.intersection(self._open.get(channel, ()))
        return len(ids), [self._agents[agent_id] for agent_id in sorted(open_ids)]

    def reserve(self, agent_id: AgentId, channel: Channel, now: float) -> None:
        """Count one more contact of `channel` in the agent's hand; it was just offered."""
        agent = self._agents[agent_id]
        load = dict(agent.load)
        load[channel] = load.get(channel, 0) + 1
        self.put(replace(agent, load=load, idle_since=now))

    def release(self, agent_id: AgentId, channel: Channel) -> None:
        """One contact of `channel` left the agent's hand."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return
        load = dict(agent.load)
        load[channel] = max(0, load.get(channel, 0) - 1)
        self.put(replace(agent, load=load))


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
    taken = taken or {}
    required = rule.requirements(contact, now)
    best: tuple[tuple[bool, float, float, str], Agent, Score] | None = None
    second: tuple[tuple[bool, float, float, str], Agent, Score] | None = None
    considered, pool = floor.open_candidates(required, contact.channel)
    count = 0
    for agent in pool:
        held = taken.get((agent.id, contact.channel), 0)
        if not eligible(agent, contact, required, held):
            continue
        count += 1
        agent_score = score(agent, contact, required, rule.weights, now, held)
        fresh = agent.id not in contact.declined_by
        entry = ((fresh, *preference(agent, agent_score)), agent, agent_score)
        if best is None or entry[0] > best[0]:
            second = best  # two statements: mypyc mis-narrows the tuple assignment
            best = entry
        elif second is None or entry[0] > second[0]:
            second = entry
    if best is None:
        return None
    return Decision(
        contact=contact,
        agent=best[1],
        score=best[2],
        considered=considered,
        eligible=count,
        runner_up=(second[1].id, second[2]) if second else None,
        step=rule.step_at(contact.waited_s(now)),
        required=required,
    )


def assign(
    contacts: Sequence[Contact], floor: Floor, rules: RuleBook, now: float
) -> list[Decision]:
    """Greedy assignment in queue order: each contact gets the best agent still free.

    Does not change `floor`; a caller applies the decisions it manages to commit.
    """
    ranked = sorted(contacts, key=lambda c: queue_rank(c, rule_for(rules, c.issue)))
    taken: Counter[tuple[AgentId, Channel]] = Counter()
    decisions: list[Decision] = []
    for contact in ranked:
        decision = pick_agent(contact, floor, rule_for(rules, contact.issue), now, taken)
        if decision is not None:
            taken[(decision.agent.id, contact.channel)] += 1
            decisions.append(decision)
    return decisions
