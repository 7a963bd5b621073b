"""The processes of a chaos run: one persistent Redis and three ``omniroute serve`` replicas.

Every process is started in its own session, so a signal reaches it and its children
(``killpg``), and everything is stopped in ``Cluster.close`` (called from ``finally`` and
registered with ``atexit``). Replicas keep their gRPC port across restarts, so clients only
reconnect; Redis keeps its port, password and data directory across restarts.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
import redis
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

from queues.embedded import EmbeddedRedis

log = structlog.get_logger(__name__)

#: How a replica is started by default: the ``omniroute`` console script's entry point.
SERVE_MODULE = "router.cli"
_AOF_DIR = "appendonlydir"
_RDB = "dump.rdb"


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisNode:
    """A persistent embedded Redis (AOF fsync always) that can be killed, stalled and restarted
    from its data directory, or from a copy of it taken earlier (data loss)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        # AOF fsync always: a Redis SIGKILL then loses no acknowledged write. With the default
        # everysec the last second is lost and the checker reports it (contacts completed
        # in that second stay assigned): see the closing notes of the faults issue.
        self.server = EmbeddedRedis(data_dir, persistent=True, port=self.port, fsync="always")
        self.pid = 0
        self.url = ""

    def start(self) -> str:
        """Start (or restart) on the same port with the same password; returns the URL."""
        self.url = self.server.start()
        client = redis.Redis.from_url(self.url, socket_timeout=5.0)
        try:
            self.pid = int(client.info("server")["process_id"])
        finally:
            client.close()
        return self.url

    def answers(self) -> bool:
        """Does the server answer PING now?"""
        if not self.url:
            return False
        client = redis.Redis.from_url(self.url, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown save; what is on disk is what the restart finds."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGCONT)
            os.kill(self.pid, signal.SIGKILL)
        self.server.stop()  # reaps the dead process

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` (SIGSTOP, SIGCONT) to the server."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def copy_data(self, target: Path) -> None:
        """Copy the data files as they are now (the AOF may end mid-command: Redis loads a
        truncated tail)."""
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        if (self.data_dir / _AOF_DIR).exists():
            shutil.copytree(self.data_dir / _AOF_DIR, target / _AOF_DIR)
        if (self.data_dir / _RDB).exists():
            shutil.copy2(self.data_dir / _RDB, target / _RDB)

    def restore_data(self, source: Path) -> None:
        """Replace the data files by a copy (only while stopped)."""
        shutil.rmtree(self.data_dir / _AOF_DIR, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / _RDB).unlink()
        if (source / _AOF_DIR).exists():
            shutil.copytree(source / _AOF_DIR, self.data_dir / _AOF_DIR)
        if (source / _RDB).exists():
            shutil.copy2(source / _RDB, self.data_dir / _RDB)

    def close(self) -> None:
        """Stop for good (wakes a stopped server first)."""
        self.signal(signal.SIGCONT)
        self.server.stop()


class Replica:
    """One ``omniroute serve`` subprocess on a fixed port."""

    def __init__(
        self,
        index: int,
        redis_url: str,
        log_dir: Path,
        *,
        module: str = SERVE_MODULE,
        offer_timeout_s: float = 1.0,
        presence_timeout_s: float = 3.0,
    ) -> None:
        self.index = index
        self.name = f"r{index}"
        self.port = free_port()
        self.redis_url = redis_url
        self.module = module
        self.log_path = log_dir / f"replica-{index}.log"
        self.offer_timeout_s = offer_timeout_s
        self.presence_timeout_s = presence_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.stopped = False  # SIGSTOP in force
        self.starts = 0

    @property
    def target(self) -> str:
        """The gRPC address."""
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """``omniroute serve`` with the chaos settings."""
        runner = f"import sys; from {self.module} import main; sys.exit(main())"
        return [
            sys.executable,
            "-c",
            runner,
            "serve",
            "--port",
            str(self.port),
            "--no-dev-keys",
            "--offer-timeout",
            str(self.offer_timeout_s),
            "--presence-timeout",
            str(self.presence_timeout_s),
            "--log-level",
            "warning",
        ]

    def start(self) -> None:
        """Start the process (not waiting for it to serve)."""
        env = dict(os.environ)
        env.update(
            {
                "REDIS_URL": self.redis_url,
                "OMNIROUTE_SWEEP_S": "0.1",
                "OMNIROUTE_TICK_S": "0.2",
                "OMNIROUTE_MIRROR_REFRESH_S": "2",
                "OMNIROUTE_GRACE_S": "0.5",
                "OMNIROUTE_HOST": "127.0.0.1",
            }
        )
        env.pop("OMNIROUTE_WEB_PORT", None)
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                self.command(),
                env=env,
                cwd=os.getcwd(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.stopped = False
        self.starts += 1

    @property
    def alive(self) -> bool:
        """Is the process running (possibly stopped)?"""
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the replica's process group."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        if sig == signal.SIGSTOP:
            self.stopped = True
        elif sig in (signal.SIGCONT, signal.SIGKILL):
            self.stopped = False

    def kill(self) -> None:
        """SIGKILL the process group and reap it."""
        self.signal(signal.SIGKILL)
        self.reap(5.0)

    def reap(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the process to exit; SIGKILL it if it lingers."""
        if self.process is None:
            return True
        try:
            self.process.wait(timeout=timeout_s)
            return True
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5.0)
            return False

    async def wait_serving(self, timeout_s: float = 30.0) -> bool:
        """Poll gRPC health until SERVING, the process dies, or `timeout_s` passes."""
        deadline = time.monotonic() + timeout_s
        async with grpc.aio.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline and self.alive:
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return True
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.1)
        return False


class Cluster:
    """Redis plus replicas; ``close`` always cleans up."""

    def __init__(self, redis_node: RedisNode, replicas: Sequence[Replica]) -> None:
        self.redis = redis_node
        self.replicas = list(replicas)
        atexit.register(self.close)

    def close(self) -> None:
        """Kill every replica's process group and stop Redis. Idempotent."""
        for replica in self.replicas:
            if replica.alive:
                replica.signal(signal.SIGCONT)
                replica.signal(signal.SIGTERM)
        for replica in self.replicas:
            replica.reap(3.0)
        self.redis.close()
        atexit.unregister(self.close)
