"""benchmarks/bench_scale.py runs end to end at tiny sizes and prints sane figures: two real
``omniroute serve`` replicas on one Redis and on a 3-shard cluster, then one capacity point.
Never a timing assertion: the machine is shared; only that the numbers are there and
consistent (every contact offered, rates and latencies positive, memory counted)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.harness import tools_missing

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--replicas", "2", "--shards", "1,3", "--tenants", "2", "--agents", "6", "--skills", "2",
    "--rates", "8", "--step", "1.5", "--warmup", "0.5", "--capacity-agents", "6",
    "--capacity-waiting", "20", "--capacity-rate", "5", "--capacity-seconds", "1.5",
    "--no-repeat-baseline", "--json",
]  # fmt: skip


@pytest.mark.skipif(tools_missing() is not None, reason=str(tools_missing()))
def test_bench_scale_runs_and_prints_sane_figures() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_scale.py"), *TINY],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)

    info = result["machine"]
    assert info["cpus"] >= 1 and info["redis_server"] != "-" and info["grpcio"] != "-"
    assert len(set(result["tenants"])) == 2

    configs = result["configs"]
    assert [(c["replicas"], c["shards"]) for c in configs] == [(2, 1), (2, 3)]
    for config in configs:
        assert config["errors"] == {}, config["errors"]
        (step,) = config["steps"]
        assert step["arrivals"] > 0
        assert step["offered"] == step["arrivals"] and step["unoffered"] == 0
        assert step["decisions_per_s"] > 0
        assert 0 < step["p50_ms"] <= step["p99_ms"] <= step["max_ms"]
        assert step["routed"] >= step["offered"] and step["lost_races"] >= 0
        assert step["scripts_redis"]["calls"] > 0 and step["scripts_redis"]["p99_us"] > 0
        assert step["cpu"]["replicas"] >= 0 and "client" in step["cpu"]
    assert configs[0]["steps"][0]["rate_ratio"] == 1.0  # the baseline against itself

    capacity = result["capacity"]
    (point,) = capacity["points"]
    assert point["agents"] == 6 and point["waiting"] == 20
    assert point["offered"] == point["arrivals"] > 0
    assert isinstance(point["passed"], bool) and isinstance(point["passed_server_clock"], bool)
    memory = point["memory"]
    assert memory["agent"]["own_keys"] > 0 and memory["agent"]["index_share"] > 0
    assert memory["contact"]["own_keys"] > 0 and memory["contact"]["index_share"] > 0
    assert memory["customer"]["total"] > 0
    assert memory["used_memory_per_contact"] > 0
    assert not math.isnan(point["replica_rss_mb"])
    assert point["core_cpu"]["decide_ms"] > 0 and point["core_cpu"]["explanation_ms"] > 0
    for clock in ("client", "server"):
        assert capacity[clock]["largest_agents"] in (0, 6)
