"""Routing with history affinity and joint assignment on, beside the plain path, in one run
(issue 9's benchmark: target >= 80 % of the plain routing rate).

Each round runs ``bench_routing.py --lifecycle --json`` twice on the same machine, one after
the other, alternating the order: plain (rules without affinity, ``OMNIROUTE_JOINT_ASSIGNMENT
=off``) and intelligent (every rule waits up to 20 s for the customer's last agent and boosts
repeat contacts; joint assignment ``auto``, the default). Desktops accept and complete every
offer, so customers (5,000 of them) come back with a history and affinity has work to do.
The figures of each side are the median over rounds; the ratio is intelligent / plain.

    .venv/bin/python benchmarks/bench_intelligence.py --quick          # ~3 minutes
    .venv/bin/python benchmarks/bench_intelligence.py --rounds 3 --json

Note on latency: with affinity on, a returning customer's contact may be held for its last
agent (up to the rule's wait) by design; submit -> offer p99 then includes those holds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, table

HERE = Path(__file__).resolve().parent
TARGET = 0.8
SIDES = {
    "plain": ["--server-env", "OMNIROUTE_JOINT_ASSIGNMENT=off"],
    "affinity + joint": ["--intelligence"],
}


def run_side(extra: list[str], quick: bool) -> dict[str, Any]:
    """One bench_routing run; its JSON figures."""
    cmd = [sys.executable, str(HERE / "bench_routing.py"), "--lifecycle", "--json", *extra]
    if quick:
        cmd.append("--quick")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out)["figures"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short phases")
    p.add_argument("--rounds", type=int, default=2, help="rounds of both sides (default 2)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    ns = p.parse_args(argv)
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    order = list(SIDES)
    for r in range(ns.rounds):
        for side in order if r % 2 == 0 else reversed(order):
            print(f"round {r + 1}/{ns.rounds}: {side} ...", file=sys.stderr, flush=True)
            runs[side].append(run_side(SIDES[side], ns.quick))

    def med(side: str, phase: str, key: str) -> float:
        return float(statistics.median(float(f[phase][key]) for f in runs[side]))

    summary: dict[str, dict[str, float]] = {}
    for side in SIDES:
        summary[side] = {
            "routed_per_s": med(side, "saturation", "routed_per_s"),
            "half_rate_p50_ms": med(side, "half_rate", "p50_ms"),
            "half_rate_p99_ms": med(side, "half_rate", "p99_ms"),
            "server_p99_ms": med(side, "half_rate", "server_p99_ms"),
        }
    plain, smart = summary["plain"], summary["affinity + joint"]
    ratio = smart["routed_per_s"] / plain["routed_per_s"] if plain["routed_per_s"] else 0.0
    result = {
        "machine": machine(),
        "rounds": ns.rounds,
        "quick": ns.quick,
        "sides": summary,
        "per_run_routed_per_s": {
            s: [f["saturation"]["routed_per_s"] for f in runs[s]] for s in SIDES
        },
        "rate_ratio": round(ratio, 3),
        "target": TARGET,
    }
    if ns.json:
        print(json.dumps(result, indent=2))
        return 0
    rows = [
        [
            side,
            f"{v['routed_per_s']:.0f}",
            f"{v['half_rate_p50_ms']:.1f}",
            f"{v['half_rate_p99_ms']:.1f}",
            f"{v['server_p99_ms']:.1f}",
        ]
        for side, v in summary.items()
    ]
    header = ["path", "routed/s (saturation)", "p50 ms", "p99 ms (client)", "p99 ms (server)"]
    print(table(rows, header))
    verdict = "met" if ratio >= TARGET else "missed"
    print(f"\nrate with affinity + joint = {ratio:.0%} of plain (target >= 80 %: {verdict})")
    print("per run routed/s:", result["per_run_routed_per_s"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
