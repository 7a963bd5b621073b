"""deploy/compose.yaml: three routers on a six-node Redis Cluster, for a local run.

Docker is not needed: the file's structure is checked, and its own shell is run with the
real binaries: each node's command (minus the image's entrypoint) on a loopback address of
its own, the one-shot `redis-cli --cluster create` service twice (it must be idempotent),
then a replica on the routers' REDIS_URL, and the routers' health check against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from queues.cluster import is_cluster_url
from router.config import Settings
from router.server import Service
from tests.grpc.conftest import replica_settings

REPO = Path(__file__).resolve().parents[2]
NODES = [f"redis-{n}" for n in range(1, 7)]
ROUTERS = ["router-1", "router-2", "router-3"]
PASSWORD = "compose-test-pw"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    return loaded


def interpolate(text: str) -> str:
    """What `docker compose` makes of the file's text: the password, and `$$` as `$`."""
    return text.replace("${REDIS_PASSWORD:-omniroute-dev}", PASSWORD).replace("$$", "$")


def test_six_redis_nodes_make_one_durable_cluster() -> None:
    services = compose()["services"]
    volumes = set()
    for name in NODES:
        node = services[name]
        assert node["image"] == "redis:7.2"
        command = " ".join(node["command"])
        for setting in ("--cluster-enabled yes", "--appendonly yes",
                        "--maxmemory-policy noeviction", "requirepass", "masterauth"):  # fmt: skip
            assert setting in command, (name, setting)
        assert "$$REDIS_PASSWORD" in command and PASSWORD not in command  # via stdin only
        assert node["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
        assert "ports" not in node
        (volume,) = node["volumes"]
        volumes.add(volume.split(":")[0])
    assert len(volumes) == len(NODES)  # one data volume each
    init = services["redis-cluster-init"]
    assert init["restart"] == "no"
    assert set(init["depends_on"]) == set(NODES)
    assert all(d["condition"] == "service_healthy" for d in init["depends_on"].values())
    script = init["command"][2]
    assert "--cluster create" in script and "--cluster-replicas 1" in script


def test_three_routers_on_the_cluster_with_health_checks() -> None:
    services = compose()["services"]
    assert sorted(n for n in services if n.startswith("router")) == ROUTERS
    ports = set()
    for name in ROUTERS:
        router = services[name]
        assert router["build"]["dockerfile"] == "deploy/Dockerfile"
        url = router["environment"]["REDIS_URL"]
        assert is_cluster_url(url) and url.endswith("@redis-1:6379/0")
        assert router["depends_on"] == {
            "redis-cluster-init": {"condition": "service_completed_successfully"}
        }
        assert "grpc_health" in " ".join(router["healthcheck"]["test"])
        grace_s = Settings.from_env(router["environment"]).grace_s
        assert float(router["stop_grace_period"].removesuffix("s")) > grace_s
        (port,) = router["ports"]
        assert port.startswith("127.0.0.1:")  # not on other interfaces before keys exist
        ports.add(port)
    assert ports == {"127.0.0.1:50051:50051", "127.0.0.1:50052:50051", "127.0.0.1:50053:50051"}


def health_check(port: int) -> int:
    """The routers' health check, run here against `port`: its exit status."""
    test = compose()["services"]["router-1"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    code = test[3].replace("127.0.0.1:50051", f"127.0.0.1:{port}")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode


def _redis_7() -> str | None:
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH"
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    found = re.search(r"v=(\d+)\.", out)
    if found is None or int(found.group(1)) < 7:
        return f"redis-server 7 or newer needed (bind-source-addr), found: {out.strip()}"
    return None


@dataclass
class ComposeCluster:
    """The compose file's six nodes, node n on 127.0.0.(n+1) and one shared free port."""

    folder: Path
    port: int
    procs: list[subprocess.Popen[bytes]]

    def host(self, name: str) -> str:
        return f"127.0.0.{int(name.removeprefix('redis-')) + 1}"

    def init(self) -> subprocess.CompletedProcess[str]:
        """The `redis-cluster-init` service's script, with host names resolved here."""
        script = interpolate(compose()["services"]["redis-cluster-init"]["command"][2])
        script = script.replace("-h redis-1", f"-h {self.host('redis-1')} -p {self.port}")
        script = script.replace(":6379", f":{self.port}")
        stub = 'getent() { echo "127.0.0.$(( ${2#redis-} + 1 )) $2"; }\n'
        return subprocess.run(
            ["sh", "-c", stub + script], capture_output=True, text=True, timeout=90,
            env={"PATH": "/usr/bin:/bin:/usr/local/bin", "REDISCLI_AUTH": PASSWORD},
        )  # fmt: skip

    def redis_url(self) -> str:
        url = interpolate(compose()["services"]["router-1"]["environment"]["REDIS_URL"])
        return url.replace("@redis-1:6379", f"@{self.host('redis-1')}:{self.port}")


def _free_everywhere(port: int) -> bool:
    for n in range(1, 7):
        for p in (port, port + 10000):
            with socket.socket() as s:
                try:
                    s.bind((f"127.0.0.{n + 1}", p))
                except OSError:
                    return False
    return True


@pytest.fixture
def compose_cluster(tmp_path: Path) -> Iterator[ComposeCluster]:
    reason = _redis_7()
    if reason:
        pytest.skip(reason)
    port = next(
        p for p in iter(lambda: random.randrange(20000, 40000), None) if _free_everywhere(p)
    )
    cluster = ComposeCluster(tmp_path, port, [])
    try:
        for name in NODES:
            command = interpolate(compose()["services"][name]["command"][2])
            host = cluster.host(name)
            folder = tmp_path / name
            folder.mkdir()
            local = (f"exec redis-server - --bind {host} --bind-source-addr {host} "
                     f"--port {port} --dir {folder} --logfile redis.log ")  # fmt: skip
            command = command.replace("exec docker-entrypoint.sh redis-server - ", local)
            cluster.procs.append(
                subprocess.Popen(
                    ["sh", "-c", command], env={"PATH": "/usr/bin:/bin", "REDIS_PASSWORD": PASSWORD}
                )
            )
        for name in NODES:  # what the nodes' health checks wait for
            node = redis.Redis(host=cluster.host(name), port=port, password=PASSWORD)
            with node:
                for _ in range(200):
                    with contextlib.suppress(redis.ConnectionError):
                        if node.ping():
                            break
                    time.sleep(0.05)
                else:
                    raise RuntimeError(f"{name} did not start")
        yield cluster
    finally:
        for proc in cluster.procs:
            proc.terminate()
        for proc in cluster.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


async def test_compose_commands_make_a_cluster_the_routers_serve_on(
    compose_cluster: ComposeCluster,
) -> None:
    first = compose_cluster.init()
    assert first.returncode == 0, first.stdout[-1500:] + first.stderr[-1500:]
    assert "[OK] All 16384 slots covered" in first.stdout
    again = compose_cluster.init()  # a second `up`: the cluster is there, nothing to create
    assert again.returncode == 0, again.stdout[-1500:] + again.stderr[-1500:]
    assert "--cluster create" not in again.stdout and "slots covered" not in again.stdout
    assert again.stdout.strip().endswith("redis cluster ready")

    url = compose_cluster.redis_url()
    assert url.startswith("redis+cluster://")
    service = Service(replica_settings(host="127.0.0.1"), url)
    port = await service.start()
    try:
        # In a thread: this replica answers on the test's own event loop.
        assert await asyncio.to_thread(health_check, port) == 0
        info = await service.state.server_info()
        assert info["maxmemory_policy"] == "noeviction"
    finally:
        await service.stop()
    assert await asyncio.to_thread(health_check, port) == 1  # nothing listens any more
