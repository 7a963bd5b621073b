"""``python -m router.chaos``: a chaos run of the given length that writes the history
(JSON lines), the violations and a report, and exits 1 if any promise was broken."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from router import logs
from router.chaos.cluster import SERVE_MODULE
from router.chaos.harness import ChaosConfig, run
from router.chaos.nemesis import FaultQuota
from router.chaos.report import render, write


def parser() -> argparse.ArgumentParser:
    """Flags of the chaos run."""
    p = argparse.ArgumentParser(prog="python -m router.chaos", description=__doc__)
    p.add_argument("--minutes", type=float, default=10.0, help="length of the load (default 10)")
    p.add_argument("--report", type=Path, default=Path("out/chaos"), help="output directory")
    p.add_argument("--rate", type=float, default=60.0, help="contacts/s per tenant (default 60)")
    p.add_argument("--agents", type=int, default=14, help="agents per tenant (default 14)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kills-per-minute", type=float, default=10.0, help="replica SIGKILLs a minute")
    p.add_argument("--redis-restarts-per-minute", type=float, default=1.0)
    p.add_argument(
        "--data-loss",
        type=int,
        default=0,
        help="Redis restarts from a copy 0.5-2 s older than the kill (may break promises)",
    )
    p.add_argument("--redis-stalls", type=int, default=0, help="Redis SIGSTOPs past the timeout")
    p.add_argument(
        "--replica-module",
        default=SERVE_MODULE,
        help="module whose main() runs a replica (the negative control passes a broken one, "
        "e.g. tests.chaos.broken_replica, from the repository root)",
    )
    p.add_argument("--offer-timeout", type=float, default=1.0)
    p.add_argument("--label", default="chaos")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run, write the report, print it; 1 if any violation was found."""
    ns = parser().parse_args(sys.argv[1:] if argv is None else argv)
    logs.configure(json=True, level="error")
    minutes = ns.minutes
    quota = FaultQuota(
        replica_kills=round(ns.kills_per_minute * minutes),
        redis_restarts=round(ns.redis_restarts_per_minute * minutes),
        pauses=max(1, round(1.5 * minutes)),
        rolling_restarts=max(1, round(minutes / 3)),
        proxy_faults=max(2, round(2 * minutes)),
        data_loss=ns.data_loss,
        redis_stalls=ns.redis_stalls,
    )
    config = ChaosConfig(
        out_dir=ns.report,
        load_s=minutes * 60.0,
        agents_per_tenant=ns.agents,
        rate_per_s=ns.rate,
        quota=quota,
        offer_timeout_s=ns.offer_timeout,
        seed=ns.seed,
        replica_module=ns.replica_module,
        label=ns.label,
    )
    result = asyncio.run(run(config))
    path = write(result.figures, result.verdict, ns.report)
    print(render(result.figures))
    print(f"history: {result.history_path}\nreport: {path}")
    return 0 if result.verdict.clean else 1
