"""Routing decision speed of the core: `assign` and `pick_agent`, before and after the
speed-up, on the same floor in one run.

Run by hand (a script, not a timed test)::

    .venv/bin/python benchmarks/bench_core.py            # about 20 s
    .venv/bin/python benchmarks/bench_core.py --quick    # fewer repeats
    .venv/bin/python benchmarks/bench_core.py --json     # figures as JSON on stdout

The floor is the live routing benchmark's (``bench_routing.py``): 50 rules, one per issue
``topicNN``, each needing that skill at level 1 or 2; 1,000 agents with 3-6 of the 50
skills at levels 1-5, capacity voice 1 and chat 3 (a third also email 2), all available
with free slots. 200 waiting contacts: voice 40%, chat 40%, email 20%, issues uniform, a
fifth with a last agent and a tenth declined by one agent.

``before`` is the straightforward core kept as the oracle of
``tests/core/test_assign_speed_equivalence.py`` (``RefFloor``, ``ref_pick_agent``,
``ref_assign``); ``after`` is ``router.assign``. Both must return the same decisions here
too (checked). Figures are decisions per second, best of the repeats: `assign` over the 200
contacts (one round, slots counted across it), and `pick_agent` for each contact alone.

``explain``: the explanation of each contact's `pick_agent` decision (the 10 best
candidates with their scores): ``before`` scores every eligible candidate with
``router.scoring.score`` (``router.explain._best_scored``, as it was), ``after`` walks them
with the inlined top-k (``router.assign.top_candidates``); the same lists (checked). Also on
a floor of 10,000 agents (``explain_10k``), where the candidates per contact are ten times
as many.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, table

from router.assign import Decision, Floor, assign, pick_agent, rule_for
from router.domain import Agent, AgentId, AgentState, Channel, Contact, ContactId
from router.explain import _best_scored, _candidate, explanation
from router.rules import Rule, RuleBook
from tests.core.test_assign_speed_equivalence import (
    RefFloor,
    assert_same,
    ref_assign,
    ref_pick_agent,
)

NOW = 1_000_000.0
SKILLS = [f"topic{k:02d}" for k in range(50)]


def make_floor(
    seed: int = 1, n_agents: int = 1000, n_contacts: int = 200
) -> tuple[list[Agent], list[Contact], RuleBook]:
    """The benchmark floor, contacts and rules (see the module docstring)."""
    rng = random.Random(seed)
    rules = RuleBook(Rule(skill, {skill: 1 if k % 2 == 0 else 2}) for k, skill in enumerate(SKILLS))
    agents = []
    for k in range(n_agents):
        capacity = {Channel.VOICE: 1, Channel.CHAT: 3}
        if k % 3 == 0:
            capacity[Channel.EMAIL] = 2
        agents.append(
            Agent(
                id=AgentId(f"agent{k:04d}"),
                skills={s: rng.randint(1, 5) for s in rng.sample(SKILLS, rng.randint(3, 6))},
                capacity=capacity,
                load={Channel.CHAT: rng.randint(0, 2)},
                state=AgentState.AVAILABLE,
                idle_since=NOW - rng.uniform(0, 1800),
            )
        )
    ids = [a.id for a in agents]
    channels = [Channel.VOICE] * 2 + [Channel.CHAT] * 2 + [Channel.EMAIL]
    contacts = [
        Contact(
            id=ContactId(f"c{k:04d}"),
            channel=rng.choice(channels),
            issue=rng.choice(SKILLS),
            arrived_at=NOW - rng.uniform(0, 120),
            priority=rng.choice([0, 0, 0, 1]),
            last_agent_id=rng.choice(ids) if rng.random() < 0.2 else None,
            declined_by=(rng.choice(ids),) if rng.random() < 0.1 else (),
        )
        for k in range(n_contacts)
    ]
    return agents, contacts, rules


def best_rate(run: Callable[[], int], repeat: int) -> float:
    """Best decisions per second over `repeat` runs of `run` (which returns decisions)."""
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        n = run()
        best = max(best, n / (time.perf_counter() - start))
    return best


def _big_floor() -> tuple[Floor, list[tuple[Contact, Rule]]]:
    agents, contacts, rules = make_floor(seed=2, n_agents=10_000)
    return Floor(agents), [(c, rule_for(rules, c.issue)) for c in contacts]


def explain_rates(
    floor: Floor, picks: Sequence[tuple[Contact, Rule]], repeat: int, name: str
) -> dict[str, float]:
    """Explanations per second, scoring every candidate (before) and top-k (after)."""
    made = [(pick_agent(c, floor, r, NOW), r) for c, r in picks]
    decisions: list[tuple[Decision, Rule]] = [(d, r) for d, r in made if d is not None]

    def before() -> int:
        for d, r in decisions:
            _best_scored(d, r, floor, NOW, 10, None)
        return len(decisions)

    def after() -> int:
        for d, r in decisions:
            explanation(d, r, floor, NOW)
        return len(decisions)

    for d, r in decisions:  # the same lists
        old = [
            _candidate(a, s, a in d.contact.declined_by)
            for a, s in _best_scored(d, r, floor, NOW, 10, None)
        ]
        assert explanation(d, r, floor, NOW)["candidates"][1:] == old
    return {f"{name}_before": best_rate(before, repeat), f"{name}_after": best_rate(after, repeat)}


def measure(repeat: int) -> dict[str, Any]:
    """Rates before and after, with their ratios."""
    agents, contacts, rules = make_floor()
    floor, ref_floor = Floor(agents), RefFloor(agents)
    picks = [(c, rule_for(rules, c.issue)) for c in contacts]
    new, old = assign(contacts, floor, rules, NOW), ref_assign(contacts, ref_floor, rules, NOW)
    assert len(new) == len(old) == len(contacts)
    for one, other in zip(new, old, strict=True):
        assert_same(one, other)
    for contact, rule in picks:
        assert_same(
            pick_agent(contact, floor, rule, NOW), ref_pick_agent(contact, ref_floor, rule, NOW)
        )

    def picks_after() -> int:
        return sum(pick_agent(c, floor, r, NOW) is not None for c, r in picks)

    def picks_before() -> int:
        return sum(ref_pick_agent(c, ref_floor, r, NOW) is not None for c, r in picks)

    rates = {
        **explain_rates(floor, picks, repeat, "explain"),
        **explain_rates(*_big_floor(), repeat, "explain_10k"),
        "assign_before": best_rate(
            lambda: len(ref_assign(contacts, ref_floor, rules, NOW)), repeat
        ),
        "assign_after": best_rate(lambda: len(assign(contacts, floor, rules, NOW)), repeat),
        "pick_before": best_rate(picks_before, repeat),
        "pick_after": best_rate(picks_after, repeat),
    }
    candidates = sum(d.eligible for d in new) / len(new)
    return {
        "agents": len(agents),
        "skills": len(SKILLS),
        "contacts": len(contacts),
        "mean_eligible_per_contact": round(candidates, 1),
        "decisions_per_s": {k: round(v) for k, v in rates.items()},
        "ratio": {
            "assign": round(rates["assign_after"] / rates["assign_before"], 2),
            "pick_agent": round(rates["pick_after"] / rates["pick_before"], 2),
            "explain": round(rates["explain_after"] / rates["explain_before"], 2),
            "explain_10k": round(rates["explain_10k_after"] / rates["explain_10k_before"], 2),
        },
        "identical_decisions": True,
        "machine": machine(),
    }


def render(result: dict[str, Any]) -> str:
    """The figures as a small table."""
    rates, ratio = result["decisions_per_s"], result["ratio"]
    rows: Sequence[Sequence[str]] = [
        [
            name,
            f"{rates[key + '_before']:,}",
            f"{rates[key + '_after']:,}",
            f"{ratio[name]:.2f}x",
        ]
        for name, key in (
            ("assign", "assign"),
            ("pick_agent", "pick"),
            ("explain", "explain"),
            ("explain_10k", "explain_10k"),
        )
    ]
    head = (
        f"{result['agents']:,} agents, {result['skills']} skills, {result['contacts']} "
        f"waiting contacts, {result['mean_eligible_per_contact']} eligible per contact; "
        "decisions and explanations identical before and after\n"
    )
    return head + table(rows, ["decisions/s", "before", "after", "ratio"])


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print (a table, or JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    result = measure(repeat=3 if args.quick else 10)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
