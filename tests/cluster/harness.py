"""A real Redis Cluster on loopback for the tests: three primaries and three replicas from
the system's ``redis-server``, joined with ``redis-cli --cluster create``.

Nodes run with a password (so MIGRATE and the replicas authenticate as in production),
no persistence, and a one-second node timeout so that a killed primary's replica takes over
within a few seconds. A node can be killed and started again (it rejoins as a replica).
"""

from __future__ import annotations

import contextlib
import random
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

PASSWORD_BYTES = 12
NODE_TIMEOUT_MS = 1000
READY_TIMEOUT_S = 30.0


def tools_missing() -> str | None:
    """Why a local cluster cannot be started here, or None."""
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH (apt-get install redis-server): cluster tests skipped"
    return None


def _free(port: int) -> bool:
    for p in (port, port + 10000):  # the cluster bus listens on port + 10000
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return False
    return True


def _pick_ports(n: int) -> list[int]:
    while True:
        base = random.randrange(20000, 40000)
        ports = list(range(base, base + n))
        if all(_free(p) for p in ports):
            return ports


@dataclass
class LocalCluster:
    """Six redis-server processes in `folder`, one per port; a context manager."""

    folder: Path
    size: int = 6
    password: str = field(default_factory=lambda: secrets.token_hex(PASSWORD_BYTES))
    ports: list[int] = field(default_factory=list)
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The cluster URL Omniroute takes (any one node; the client finds the rest)."""
        return f"redis+cluster://:{self.password}@127.0.0.1:{self.ports[0]}/0"

    def start(self) -> LocalCluster:
        """Start the nodes and create the cluster; wait until every slot is served."""
        self.ports = _pick_ports(self.size)
        for port in self.ports:
            self.start_node(port)
        addresses = [f"127.0.0.1:{p}" for p in self.ports]
        subprocess.run(
            ["redis-cli", "-a", self.password, "--no-auth-warning", "--cluster", "create",
             *addresses, "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        self.wait_ready()
        return self

    def start_node(self, port: int) -> None:
        """Start (or restart, keeping its nodes.conf) the node on `port`."""
        folder = self.folder / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "redis.conf"
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {folder}\ncluster-enabled yes\n"
            f"cluster-config-file nodes.conf\ncluster-node-timeout {NODE_TIMEOUT_MS}\n"
            f"requirepass {self.password}\nmasterauth {self.password}\n"
            'save ""\nappendonly no\nlogfile redis.log\nmaxmemory-policy noeviction\n'
            "repl-diskless-sync-delay 0\n"
        )
        config.chmod(0o600)
        self.procs[port] = subprocess.Popen(["redis-server", str(config)])
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            with contextlib.suppress(redis.ConnectionError), self.node(port) as client:
                client.ping()
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {port} did not start")
            time.sleep(0.05)

    def node(self, port: int) -> redis.Redis:
        """A plain client of one node."""
        return redis.Redis(port=port, password=self.password, decode_responses=True)

    def kill(self, port: int) -> None:
        """SIGKILL the node on `port`."""
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait(10)

    def primaries(self) -> list[int]:
        """Ports of the running primaries."""
        ports = []
        for port in self.procs:
            with self.node(port) as c:
                if c.execute_command("ROLE")[0] == "master":
                    ports.append(port)
        return ports

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until every running node says cluster_state:ok and sees every slot served."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if all(self._ok(p) for p in self.procs):
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not become ready")
            time.sleep(0.1)

    def _ok(self, port: int) -> bool:
        with self.node(port) as c:
            info = c.cluster("info")
            if info["cluster_state"] != "ok" or int(info["cluster_slots_ok"]) != 16384:
                return False
            replication = c.info("replication")  # a replica counts once it has synced
            return bool(
                replication["role"] == "master" or replication["master_link_status"] == "up"
            )

    def stop(self) -> None:
        """Stop every node."""
        for port in list(self.procs):
            proc = self.procs.pop(port)
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
