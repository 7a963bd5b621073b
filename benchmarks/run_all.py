"""Run every benchmark script in benchmarks/ that exists, one after another (``make bench``).

    .venv/bin/python benchmarks/run_all.py [--quick]

``--quick`` is passed to the scripts that accept it. A missing script is skipped with a
note; the exit status is the first failing script's, else 0.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: In the order they run; each is a script with its own ``main``.
SCRIPTS = (
    "bench_core.py",
    "bench_joint.py",
    "bench_routing.py",
    "bench_intelligence.py",
    "bench_isolation.py",
    "bench_web.py",
    "bench_scale.py",
    "bench_plan.py",
    "sim_bench.py",
)


def accepts_quick(script: Path) -> bool:
    """Does the script take ``--quick``? (Asked through its ``--help``.)"""
    out = subprocess.run(
        [sys.executable, str(script), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    return "--quick" in out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; print each one's output as it comes."""
    p = argparse.ArgumentParser(description="run every benchmark script")
    p.add_argument("--quick", action="store_true", help="short runs where a script has them")
    ns = p.parse_args(argv)
    status = 0
    for name in SCRIPTS:
        script = HERE / name
        if not script.exists():
            print(f"== {name}: not present, skipped\n", flush=True)
            continue
        args = ["--quick"] if ns.quick and accepts_quick(script) else []
        print(f"== {name} {' '.join(args)}".rstrip(), flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(script), *args])
        print(f"== {name}: exit {code} after {time.perf_counter() - started:.0f} s\n", flush=True)
        status = status or code
    return status


if __name__ == "__main__":
    sys.exit(main())
