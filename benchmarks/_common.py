"""Helpers shared by the benchmark scripts: the machine, percentiles, CPU time, tables.

Benchmarks are scripts, not tests: they print figures and ratios for a person to read,
and ``--json`` for a machine. Nothing here starts or stops anything.
"""

from __future__ import annotations

import math
import os
import platform
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ('unknown' elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str) -> str:
    """Installed version of a distribution, or '-'."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def redis_server_version(binary: str = "redis-server") -> str:
    """`redis-server --version`'s v=..., or '-'."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except OSError:
        return "-"
    for part in out.split():
        if part.startswith("v="):
            return part[2:]
    return "-"


def machine() -> dict[str, str | int]:
    """What the figures were measured on."""
    return {
        "cpus": os.cpu_count() or 0,
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "grpcio": package_version("grpcio"),
        "protobuf": package_version("protobuf"),
        "redis_py": package_version("redis"),
    }


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0-1) by the nearest-rank method; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_S


def busy_seconds() -> float:
    """CPU time all processes of the machine have used so far (Linux /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) * _TICK_S


@dataclass
class CpuMeter:
    """CPU share of one core used by each process between ``start`` and ``stop``, and by
    every other process of the machine (``others``: a busy machine skews the figures)."""

    pids: dict[str, int]

    def start(self) -> None:
        """Take the first reading."""
        self._t0 = _now()
        self._cpu0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._busy0 = busy_seconds()

    def stop(self) -> dict[str, float]:
        """Percent of one core per process since ``start``."""
        wall = max(_now() - self._t0, 1e-9)
        used = {name: cpu_seconds(pid) - self._cpu0[name] for name, pid in self.pids.items()}
        others = busy_seconds() - self._busy0 - sum(used.values())
        shares = {name: round(100.0 * v / wall, 1) for name, v in used.items()}
        shares["others"] = round(max(0.0, 100.0 * others / wall), 1)
        return shares


def _now() -> float:
    return time.perf_counter()


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """A plain text table with left-aligned first column and right-aligned figures."""
    cells = [list(header), *[list(r) for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])
