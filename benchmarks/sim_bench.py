"""Simulator speed: contacts per second of wall time, Omniroute's engine vs ciw.

Run by hand (needs the `bench` extra: ``pip install -e '.[bench]'``)::

    .venv/bin/python benchmarks/sim_bench.py [--profile]

Models, each run by both simulators on the same parameters:

1. M/M/c: 540 calls/h, exponential 60 s handling, 10 agents (occupancy 90%).
2. M/M/c+M: the same with exponential patience of 2 minutes (Erlang A).
3. The 15-day bank log: Omniroute replays it multi-skill (23 agents with skills and
   on-duty spans, priorities, real handle times) through the live routing policy. Ciw has
   no skill-based routing, so its side is the same arrivals and handle times on one pooled
   queue of the same head count -- a simpler model, which favours ciw.

Omniroute's engine always routes through ``router.assign.pick_agent`` (the live policy).
Prints figures and ratios; ``--profile`` adds a cProfile of the M/M/c run; ``--mypyc``
compiles the core and the event loop with mypyc into a temporary copy and runs the same
benchmark there (an experiment on what compiling would buy; nothing in the repo changes).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

sys.path.insert(0, os.environ.get("OMNIROUTE_BENCH_ROOT", str(Path(__file__).resolve().parents[1])))

import ciw  # type: ignore[import-untyped]

from router.domain import AgentId, Channel
from router.rules import Rule, RuleBook
from simulations.engine import simulate
from simulations.models import NEVER, Distribution, Exponential, Stream
from simulations.plan import AgentSpec, Plan
from simulations.replay import bank_scenario

ROOT = Path(__file__).resolve().parents[1]
#: The modules on the hot path, compiled by ``--mypyc``.
COMPILED = (
    "router/domain.py",
    "router/rules.py",
    "router/scoring.py",
    "router/assign.py",
    "simulations/engine.py",
    "simulations/waiting.py",
)
RATE, AHT, SERVERS, PATIENCE = 540 / 3600, 60.0, 10, 120.0
HORIZON_S = 100_000.0  # about 15,000 contacts per run


def mmc_plan(patience: Distribution) -> Plan:
    """The M/M/c(+M) model for Omniroute's engine."""
    rule = Rule(issue="billing", skills=MappingProxyType({"billing": 1}))
    agents = tuple(
        AgentSpec(
            AgentId(f"a{k:03d}"),
            "phones",
            MappingProxyType({"billing": 3}),
            MappingProxyType({Channel.VOICE: 1}),
            ((0.0, float("inf")),),
        )
        for k in range(SERVERS)
    )
    stream = Stream("billing", Channel.VOICE, (RATE,), HORIZON_S, Exponential(AHT), patience)
    return Plan(
        agents=agents,
        rules=RuleBook([rule]),
        horizon_s=HORIZON_S,
        interval_s=3600.0,
        streams=(stream,),
    )


def timed(run: Callable[[], int], repeat: int = 3) -> tuple[float, int]:
    """Best contacts/s over `repeat` runs, and the contacts of one run."""
    best, count = 0.0, 0
    for _ in range(repeat):
        start = time.perf_counter()
        count = run()
        best = max(best, count / (time.perf_counter() - start))
    return best, count


def ours_mmc(patience: Distribution) -> Callable[[], int]:
    """Omniroute's engine on M/M/c(+M)."""
    plan = mmc_plan(patience)
    return lambda: simulate(plan, 1).contacts


def ciw_mmc(patience_s: float | None) -> Callable[[], int]:
    """Ciw on M/M/c(+M)."""

    def run() -> int:
        kwargs = {}
        if patience_s is not None:
            kwargs["reneging_time_distributions"] = [ciw.dists.Exponential(1 / patience_s)]
        network = ciw.create_network(
            arrival_distributions=[ciw.dists.Exponential(RATE)],
            service_distributions=[ciw.dists.Exponential(1 / AHT)],
            number_of_servers=[SERVERS],
            **kwargs,
        )
        ciw.seed(1)
        sim = ciw.Simulation(network)
        sim.simulate_until_max_time(HORIZON_S)
        return len(sim.get_all_records())

    return run


def ciw_bank(plan: Plan) -> Callable[[], int]:
    """Ciw on the bank's arrivals and handle times, one pooled queue (no skills)."""
    times = [c.arrived_at for c in plan.replay]
    gaps = [max(1e-9, b - a) for a, b in zip([0.0, *times], times, strict=False)]
    services = [max(1e-9, c.handle_s or AHT) for c in plan.replay]

    def run() -> int:
        network = ciw.create_network(
            arrival_distributions=[ciw.dists.Sequential(gaps)],
            service_distributions=[ciw.dists.Sequential(services)],
            number_of_servers=[len(plan.agents)],
        )
        ciw.seed(1)
        sim = ciw.Simulation(network)
        sim.simulate_until_max_customers(len(times), method="Arrive")
        return len(times)

    return run


def main() -> int:
    """Print the table of rates and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", action="store_true", help="profile the M/M/c run")
    parser.add_argument("--mypyc", action="store_true", help="also run a mypyc-compiled copy")
    args = parser.parse_args()
    if args.mypyc:
        return compiled_run()
    rows = []
    for label, patience in (("M/M/c", None), ("M/M/c+M", PATIENCE)):
        ours, n = timed(ours_mmc(NEVER if patience is None else Exponential(patience)))
        theirs, m = timed(ciw_mmc(patience))
        rows.append((label, n, ours, m, theirs))
    scenario = bank_scenario()
    start = time.perf_counter()
    log = simulate(scenario.plan, 1)
    bank_s = time.perf_counter() - start
    theirs, m = timed(ciw_bank(scenario.plan), repeat=1)
    rows.append(("bank replay (15 days)", log.contacts, log.contacts / bank_s, m, theirs))
    print(f"{'model':<24}{'contacts':>10}{'omniroute/s':>14}{'ciw/s':>12}{'ratio':>8}")
    for label, n, ours, _, theirs in rows:
        print(f"{label:<24}{n:>10,}{ours:>14,.0f}{theirs:>12,.0f}{ours / theirs:>7.2f}x")
    print(
        f"bank replay, one run with the live policy: {bank_s:.2f} s "
        f"({len(scenario.plan.agents)} agents, {log.contacts:,} contacts; target <= 2 s)"
    )
    if args.profile:
        profiler = cProfile.Profile()
        plan = mmc_plan(NEVER)
        profiler.runcall(simulate, plan, 1)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
        print(out.getvalue())
    return 0


def compiled_run() -> int:
    """Copy the code next to the bank log's expected place, compile the hot path, rerun."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "repo"
        for package in ("router", "simulations"):
            shutil.copytree(
                ROOT / package, work / package, ignore=shutil.ignore_patterns("__pycache__", "pb")
            )
        (Path(tmp) / "shared").symlink_to(ROOT.parent / "shared")  # ../shared/data as usual
        mypyc = Path(sys.executable).with_name("mypyc")
        subprocess.run(
            [str(mypyc), *COMPILED],
            cwd=work,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        print("mypyc-compiled:", ", ".join(COMPILED))
        env = {**os.environ, "OMNIROUTE_BENCH_ROOT": str(work)}
        return subprocess.run([sys.executable, __file__], env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
