"""Joint assignment (`router.joint.joint_assign`) against scipy's Hungarian method and the
greedy pass (`router.assign.assign`) on the same random instances, in one run.

Run by hand (a script, not a timed test)::

    .venv/bin/python benchmarks/bench_joint.py            # about 1-2 minutes (greedy is slow)
    .venv/bin/python benchmarks/bench_joint.py --quick    # 200 x 2,000 only
    .venv/bin/python benchmarks/bench_joint.py --json     # figures as JSON on stdout

Instances: real `Agent`, `Contact` and `Rule` values, so the end-to-end time is the code the
engine runs. 12 skills, one rule per pair of skills with random weights; each agent holds
each skill with probability 0.837 at a random level, so about 30% of pairs are ineligible;
voice contacts and one voice slot per agent (unit capacity, so scipy solves the same
problem); 20% of contacts have a last agent (affinity).

Figures (median of the runs): ``joint`` end to end, on a floor whose skills did not change
since the last pass (the live floor's usual state: its table of skill levels and capacities
is kept between passes); ``cold``: the first pass on a new floor, building that table (one
run); inside ``joint``: ``pool`` (reading the available agents into arrays), ``solver``
(OR-Tools ``solve_max_flow_with_min_cost`` only, all rounds) and ``graph`` (everything
else: scores, lists, arcs, decisions); ``scipy`` is
``linear_sum_assignment`` on the dense score matrix (building the matrix is not counted);
``greedy`` is `assign`. The joint total score is checked against scipy's optimum.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CpuMeter, machine, package_version, table

import router.joint as joint
from router.assign import Floor, assign, rule_for
from router.domain import Agent, AgentId, AgentState, Channel, Contact, ContactId
from router.rules import Rule, RuleBook, Weights

NOW = 1_000_000.0
TARGET_MS = {(200, 2000): 15.0, (1000, 10000): 600.0}


def make_instance(
    seed: int, n_contacts: int, n_agents: int
) -> tuple[list[Agent], list[Contact], RuleBook]:
    """A random unit-capacity instance (see the module docstring)."""
    rng = random.Random(seed)
    skills = [f"s{k}" for k in range(12)]
    rules = [
        Rule(
            f"{a}_{b}",
            {a: 1, b: 1},
            weights=Weights(rng.uniform(0.5, 2), rng.uniform(0, 1), rng.uniform(0, 1)),
        )
        for a, b in itertools.combinations(skills, 2)
    ]
    agents = [
        Agent(
            id=AgentId(f"ag{k:05d}"),
            skills={s: rng.randint(1, 5) for s in skills if rng.random() < 0.837},
            capacity={Channel.VOICE: 1, Channel.EMAIL: 3},
            load={Channel.EMAIL: rng.randint(0, 3)},
            state=AgentState.AVAILABLE,
            idle_since=NOW - rng.uniform(0, 1200),
        )
        for k in range(n_agents)
    ]
    contacts = [
        Contact(
            id=ContactId(f"c{k:05d}"),
            channel=Channel.VOICE,
            issue=rng.choice(rules).issue,
            arrived_at=NOW - rng.uniform(0, 60),
            last_agent_id=rng.choice(agents).id if rng.random() < 0.2 else None,
        )
        for k in range(n_contacts)
    ]
    return agents, contacts, RuleBook(rules)


def score_matrix(agents: Sequence[Agent], contacts: Sequence[Contact], rules: RuleBook) -> Any:
    """Every pair's score as `router.scoring.score` computes it; NaN where ineligible."""
    index = {a.id: j for j, a in enumerate(agents)}
    idle = np.array([NOW - a.idle_since for a in agents])
    occupancy = np.array(
        [1.0 - min(1.0, a.contacts_in_hand / sum(a.capacity.values())) for a in agents]
    )
    matrix = np.full((len(contacts), len(agents)), np.nan)
    for i, contact in enumerate(contacts):
        rule = rule_for(rules, contact.issue)
        w = rule.weights
        levels = np.array([[a.skills.get(s, 0) for s in rule.skills] for a in agents])
        prof = np.minimum(levels, 5).sum(axis=1) / (5 * len(rule.skills))
        row = w.proficiency * prof + w.idle * np.minimum(1.0, idle / w.idle_horizon_s)
        row = row + w.occupancy * occupancy
        if contact.last_agent_id is not None:
            row[index[contact.last_agent_id]] += w.affinity
        matrix[i] = np.where((levels >= 1).all(axis=1), row, np.nan)
    return matrix


class _Timers:
    """Wraps `router.joint`'s pool building and the OR-Tools solve to split the time."""

    def __init__(self) -> None:
        self.pool = 0.0
        self.solver = 0.0
        self.rounds = 0
        self.arcs = 0
        timers = self
        build_pool = joint._build_pool

        def timed_pool(*args: Any) -> Any:
            start = time.perf_counter()
            try:
                return build_pool(*args)
            finally:
                timers.pool += time.perf_counter() - start

        class TimedFlow(joint.min_cost_flow.SimpleMinCostFlow):  # type: ignore[misc,name-defined]
            def solve_max_flow_with_min_cost(self) -> Any:
                timers.rounds += 1
                timers.arcs += self.num_arcs()
                start = time.perf_counter()
                try:
                    return super().solve_max_flow_with_min_cost()
                finally:
                    timers.solver += time.perf_counter() - start

        class Module:
            SimpleMinCostFlow = TimedFlow

        joint._build_pool = timed_pool  # type: ignore[assignment]
        joint.min_cost_flow = Module  # type: ignore[assignment]

    def reset(self) -> None:
        self.pool = self.solver = 0.0
        self.rounds = self.arcs = 0


def _median_ms(fn: Callable[[], object], runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times), result


def measure(n_contacts: int, n_agents: int, runs: int, greedy_runs: int) -> dict[str, Any]:
    """All figures for one size."""
    agents, contacts, rules = make_instance(n_contacts, n_contacts, n_agents)
    floor = Floor(agents)
    matrix = score_matrix(agents, contacts, rules)
    timers = _Timers()
    start = time.perf_counter()
    joint.joint_assign(contacts, floor, rules, NOW)  # cold: builds the floor's table; warm-up
    cold_ms = 1e3 * (time.perf_counter() - start)
    joint_ms, pool_ms, solver_ms = [], [], []
    decisions: Any = None
    for _ in range(runs):
        timers.reset()
        start = time.perf_counter()
        decisions = joint.joint_assign(contacts, floor, rules, NOW)
        joint_ms.append(1e3 * (time.perf_counter() - start))
        pool_ms.append(1e3 * timers.pool)
        solver_ms.append(1e3 * timers.solver)
    cost = np.nan_to_num(-matrix, nan=1e6)
    scipy_ms, (rows, cols) = _median_ms(lambda: linear_sum_assignment(cost), runs)  # type: ignore[misc]
    greedy_ms, greedy = _median_ms(lambda: assign(contacts, floor, rules, NOW), greedy_runs)
    joint_total = sum(d.score.total for d in decisions)
    scipy_total = float(matrix[rows, cols].sum())
    greedy_total = sum(d.score.total for d in greedy)  # type: ignore[attr-defined]
    median = statistics.median
    return {
        "contacts": n_contacts,
        "agents": n_agents,
        "ineligible_share": round(float(np.isnan(matrix).mean()), 3),
        "runs": runs,
        "joint_ms": round(median(joint_ms), 2),
        "cold_ms": round(cold_ms, 2),
        "pool_ms": round(median(pool_ms), 2),
        "solver_ms": round(median(solver_ms), 2),
        "graph_ms": round(median(joint_ms) - median(pool_ms) - median(solver_ms), 2),
        "rounds": timers.rounds,
        "arcs": timers.arcs,
        "dense_arcs": int((~np.isnan(matrix)).sum()),
        "scipy_ms": round(scipy_ms, 2),
        "greedy_ms": round(greedy_ms, 2),
        "target_ms": TARGET_MS.get((n_contacts, n_agents)),
        "joint_total": round(joint_total, 6),
        "scipy_total": round(scipy_total, 6),
        "greedy_total": round(greedy_total, 6),
        "served": [len(decisions), len(rows), len(greedy)],  # type: ignore[arg-type]
        "optimal": abs(joint_total - scipy_total) <= n_contacts * 1e-6,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", action="store_true", help="figures as JSON on stdout")
    parser.add_argument("--quick", action="store_true", help="200 x 2,000 only")
    parser.add_argument("--runs", type=int, default=0, help="runs per figure (default: 15/5)")
    args = parser.parse_args(argv)
    sizes = [(200, 2000)] if args.quick else [(200, 2000), (1000, 10000)]
    meter = CpuMeter({"bench": __import__("os").getpid()})
    meter.start()
    results = []
    for n, m in sizes:
        runs = args.runs or (15 if n <= 200 else 5)
        results.append(measure(n, m, runs, greedy_runs=3 if n <= 200 else 1))
    cpu = meter.stop()
    info = {**machine(), "ortools": package_version("ortools"), "scipy": package_version("scipy")}
    if args.json:
        print(json.dumps({"machine": info, "cpu_percent": cpu, "results": results}, indent=2))
        return 0
    rows = []
    for r in results:
        rows.append([
            f"{r['contacts']} x {r['agents']}",
            f"{r['joint_ms']:.1f}",
            f"{r['cold_ms']:.1f}",
            f"{r['pool_ms']:.1f}",
            f"{r['graph_ms']:.1f}",
            f"{r['solver_ms']:.1f}",
            f"{r['scipy_ms']:.1f}",
            f"{r['greedy_ms']:.0f}",
            f"{r['joint_ms'] / r['scipy_ms']:.2f}",
            f"{r['greedy_ms'] / r['joint_ms']:.0f}",
            f"{r['rounds']}/{r['arcs']}/{r['dense_arcs']}",
            f"{r['target_ms']:.0f}",
        ])  # fmt: skip
    print(f"{info['cpu_model']}, {info['cpus_usable']} CPUs usable; ortools {info['ortools']}")
    print(f"CPU: this process {cpu['bench']}% of a core, others {cpu['others']}%\n")
    header = ["size", "joint ms", "cold", "pool", "graph", "solver", "scipy ms", "greedy ms",
              "joint/scipy", "greedy/joint", "solves/arcs/dense arcs", "target"]  # fmt: skip
    print(table(rows, header))
    print()
    for r in results:
        print(
            f"{r['contacts']} x {r['agents']}: total score joint {r['joint_total']:.4f}, "
            f"scipy {r['scipy_total']:.4f} ({'equal' if r['optimal'] else 'DIFFERENT'}), "
            f"greedy {r['greedy_total']:.4f}; served joint/scipy/greedy {r['served']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
