"""`omniroute serve` as a real process under SIGTERM, as Kubernetes stops a pod.

After the pod's preStop pause the kubelet sends SIGTERM; the replica must then say
NOT_SERVING at once, take no new calls, keep serving the streams it holds for its grace
setting (``--grace`` / ``OMNIROUTE_GRACE_S``), then cancel them and exit 0 well inside
``terminationGracePeriodSeconds`` (deploy/k8s/deployment.yaml budgets for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from router.auth import Role
from router.pb.omniroute.v1 import agent_service_pb2 as agent_pb
from router.pb.omniroute.v1 import agent_service_pb2_grpc as agent_grpc
from tests.grpc.conftest import Api, OfferStream

GRACE_S = 4.0
#: What stopping may take beyond the grace: the routing loops, Redis, the interpreter.
STOP_MARGIN_S = 3.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Replica:
    """An ``omniroute serve`` child process; its JSON log lines are kept."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, object]] = []
        self.port = 0
        self._reader: asyncio.Task[None] | None = None

    async def started(self, timeout_s: float = 60.0) -> int:
        async def until_started() -> int:
            assert self.proc.stderr is not None
            while line := await self.proc.stderr.readline():
                event = self._keep(line)
                if event.get("event") == "service_started":
                    return int(str(event["port"]))
            raise AssertionError(f"omniroute serve exited early: {self.events}")

        self.port = await asyncio.wait_for(until_started(), timeout_s)
        self._reader = asyncio.create_task(self._read_rest())
        return self.port

    def _keep(self, line: bytes) -> dict[str, object]:
        try:
            event = json.loads(line)
        except ValueError:
            event = {"event": "text", "line": line.decode(errors="replace").rstrip()}
        self.events.append(event)
        return event

    async def _read_rest(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self._keep(line)

    def logged(self, name: str) -> bool:
        return any(e.get("event") == name for e in self.events)


@pytest.fixture
async def replica(redis_url: str) -> AsyncIterator[Replica]:
    """A second replica as its own process, on the test Redis (beside the `api` one)."""
    command = Path(sys.executable).with_name("omniroute")
    env = {**os.environ, "REDIS_URL": redis_url, "OMNIROUTE_LOG_LEVEL": "info"}
    proc = await asyncio.create_subprocess_exec(
        str(command), "serve", "--port", "0", "--grace", str(GRACE_S),
        env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    replica = Replica(proc)
    try:
        yield replica
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if replica._reader is not None:
            await asyncio.gather(replica._reader, return_exceptions=True)


async def test_sigterm_says_not_serving_drains_streams_and_exits_within_grace(
    api: Api, replica: Replica
) -> None:
    await api.create_rule("billing", {"billing": 3})
    await api.create_agent("a1", {"billing": 4})
    port = await replica.started()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    health = health_pb2_grpc.HealthStub(channel)
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
    agents = agent_grpc.AgentServiceStub(channel)
    agent_md = api.md(Role.AGENT)
    try:
        assert (await watch.read()).status == SERVING
        await agents.SignIn(agent_pb.SignInRequest(name="tenants/t1/agents/a1"), metadata=agent_md)
        offers = OfferStream(
            agents.StreamOffers(
                agent_pb.StreamOffersRequest(name="tenants/t1/agents/a1"), metadata=agent_md
            )
        )
        await asyncio.sleep(0.3)  # the stream is registered on the replica

        replica.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()

        # NOT_SERVING at once, on the open health watch.
        assert (await asyncio.wait_for(watch.read(), 2.0)).status == NOT_SERVING
        assert time.monotonic() - sent < 2.0

        # No new calls: a fresh connection is refused while the old streams drain.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as fresh:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await health_pb2_grpc.HealthStub(fresh).Check(
                    health_pb2.HealthCheckRequest(), timeout=1.0
                )
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

        # Draining: the agent's stream on the stopping replica still gets its offers (the
        # contact is submitted through the other replica).
        contact = await api.submit("billing")
        offer = await offers.next_offer(wait_s=GRACE_S - 0.5)
        assert offer.contact.name == contact.name
        assert time.monotonic() - sent < GRACE_S

        # Then the grace ends: open streams are cancelled and the process exits 0.
        returncode = await asyncio.wait_for(replica.proc.wait(), GRACE_S + STOP_MARGIN_S + 5)
        took = time.monotonic() - sent
        assert returncode == 0
        assert GRACE_S - 0.5 <= took <= GRACE_S + STOP_MARGIN_S, took
        ended = await asyncio.wait_for(offers.call.code(), 5.0)
        assert ended in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), ended
        assert replica.logged("shutdown_requested") and replica.logged("service_stopped")
        await offers.close()
    finally:
        watch.cancel()
        with contextlib.suppress(Exception):
            await channel.close()


async def test_sigterm_with_nothing_open_exits_at_once(replica: Replica) -> None:
    await replica.started()
    replica.proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    assert await asyncio.wait_for(replica.proc.wait(), GRACE_S + STOP_MARGIN_S) == 0
    assert time.monotonic() - sent < STOP_MARGIN_S
    assert replica.logged("service_stopped")
