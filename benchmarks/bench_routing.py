"""Routing throughput and submit->offer latency of the live service, against the machine's
ceiling (a no-op gRPC call on the same server, a bare Redis round trip), in one run.

Run by hand (a script, not a timed test; loopback only)::

    .venv/bin/python benchmarks/bench_routing.py            # about 1-2 minutes
    .venv/bin/python benchmarks/bench_routing.py --quick    # about 20-30 seconds
    .venv/bin/python benchmarks/bench_routing.py --json     # figures as JSON on stdout
    .venv/bin/python benchmarks/bench_routing.py --profile out/   # + py-spy of the server

Processes: an embedded ``redis-server``; one ``omniroute serve`` (``--no-dev-keys``,
``--log-level warning``); and this script, which plays both the contact-center platform
(submitting contacts) and the 1,000 agent desktops (each with its own StreamOffers stream,
accepting and completing every offer at once so capacity frees). Tenant, agents, rules and
the platform API key are written directly through ``Supervision`` before the server starts.

Phases, all against the same server with the 1,000 offer streams open:

1. no-op gRPC: ``grpc.health.v1.Health/Check`` (same grpc.aio server, same interceptor chain,
   no API key and no Redis), ``--concurrency`` calls in flight, closed loop;
2. one-read gRPC: ``ContactService/GetContact`` (API key + role check + one HGETALL);
3. Redis PING from an asyncio redis-py client at the same concurrency (and ``redis-benchmark``
   for reference when installed);
4. saturation: ``--concurrency`` submitters in a closed loop; the routing rate is offers
   arriving on agents' streams per second in the measured window (after a warm-up);
5. latency: an open loop (fixed schedule, not waiting on replies) at half the saturation
   rate; submit->offer is from the scheduled submit time to the offer's arrival on the
   agent's stream, both on this process's clock. The server's own view (the contact's
   ``offer_time - create_time``, Redis clock, millisecond resolution) is shown beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import grpc
from _common import CpuMeter, free_port, machine, percentile, table
from grpc_health.v1 import health_pb2, health_pb2_grpc

from queues.embedded import EmbeddedRedis
from queues.state import RedisState
from router import logs
from router.auth import Role
from router.domain import Agent, AgentId, Channel, TenantId
from router.pb.omniroute.v1 import (
    agent_service_pb2,
    agent_service_pb2_grpc,
    contact_service_pb2,
    contact_service_pb2_grpc,
    resources_pb2,
)
from router.rules import Rule
from router.server import redis_client
from router.supervision import Supervision

TENANT = TenantId("bench")
CHANNEL_MIX = ((resources_pb2.CHANNEL_VOICE, 0.4), (resources_pb2.CHANNEL_CHAT, 0.4),
               (resources_pb2.CHANNEL_EMAIL, 0.2))  # fmt: skip
P99_TARGET_MS = 10.0
RATE_TARGET = 0.5  # routing rate as a share of the no-op gRPC rate
DRAIN_S = 15.0


@dataclass(frozen=True)
class Plan:
    """Sizes and durations of one run."""

    agents: int = 1000
    skills: int = 50
    customers: int = 5000
    concurrency: int = 64
    agent_channels: int = 4
    baseline_s: float = 5.0
    warmup_s: float = 3.0
    saturation_s: float = 20.0
    latency_s: float = 20.0
    seed: int = 7
    #: True: desktops accept and complete every offer (4 RPCs a contact: the whole life).
    #: False: agents have capacity to spare and leave offers open, so what is measured is
    #: routing itself: submit, decide, reserve, offer delivered on the agent's stream.
    lifecycle: bool = False
    #: True: every rule waits up to 20 s for the customer's last agent (history affinity)
    #: and boosts repeat contacts; the server assigns jointly when contacts compete (its
    #: default). False is the plain path only with OMNIROUTE_JOINT_ASSIGNMENT=off.
    intelligence: bool = False

    @classmethod
    def quick(cls) -> Plan:
        """About 20-30 s in all."""
        return cls(baseline_s=2.0, warmup_s=1.5, saturation_s=5.0, latency_s=5.0)


# --- setup ------------------------------------------------------------------------------


def issue(k: int) -> str:
    """Issue k; its rule requires the skill of the same name."""
    return f"topic{k:02d}"


async def populate(url: str, plan: Plan) -> str:
    """Rules, agents and the platform API key, written straight to Redis; returns the key."""
    rng = random.Random(plan.seed)
    redis = redis_client(url)
    try:
        supervision = Supervision(RedisState(redis))
        await supervision.declare_skills(TENANT, (issue(k) for k in range(plan.skills)), "bench")
        for k in range(plan.skills):
            rule = Rule(issue=issue(k), skills={issue(k): 1 + k % 2})
            if plan.intelligence:
                rule = replace(rule, affinity_wait_s=20.0, repeat_priority_boost=1)
            await supervision.write_rule(TENANT, rule, "create", "bench")
        gate = asyncio.Semaphore(32)

        async def create(n: int) -> None:
            skills = {
                issue(k): rng.randint(1, 5)
                for k in rng.sample(range(plan.skills), rng.randint(3, 6))
            }
            if plan.lifecycle:
                capacity = {Channel.VOICE: 1, Channel.CHAT: 3}
                if n % 3 == 0:
                    capacity[Channel.EMAIL] = 2
            else:  # room for every contact of the run: no accept/complete in the loop
                capacity = {Channel.VOICE: 50, Channel.CHAT: 50, Channel.EMAIL: 50}
            agent = Agent(id=AgentId(f"a{n:04d}"), skills=skills, capacity=capacity)
            async with gate:
                await supervision.create_agent(TENANT, agent, "bench")

        await asyncio.gather(*(create(n) for n in range(plan.agents)))
        _, secret = await supervision.create_api_key(
            TENANT, Role.PLATFORM, "", "benchmark platform", "bench"
        )
        return secret
    finally:
        await redis.aclose()


@contextlib.contextmanager
def server_process(url: str, port: int, data_dir: Path, extra_env: dict[str, str]) -> Any:
    """``omniroute serve`` in a child process; yields the Popen."""
    cmd = [
        sys.executable,
        "-c",
        "import sys; from router.cli import main; sys.exit(main())",
        "serve",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--data-dir", str(data_dir),
        "--no-dev-keys",
        "--log-level", "warning",
    ]  # fmt: skip
    env = {**os.environ, **extra_env, "REDIS_URL": url}
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def wait_serving(channel: grpc.aio.Channel, proc: Any) -> None:
    """Until Health/Check says SERVING (at most 30 s)."""
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}; see server.log")
        with contextlib.suppress(grpc.aio.AioRpcError):
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        await asyncio.sleep(0.1)
    raise SystemExit("the server did not become SERVING within 30 s")


# --- the client: platform and agent desktops --------------------------------------------


@dataclass
class Phase:
    """Submissions of one phase, by sequence number."""

    name: str
    seqs: list[int] = field(default_factory=list)


class Floor:
    """The platform and the agents, in this one process and on its clock."""

    def __init__(self, target: str, secret: str, plan: Plan) -> None:
        opts = [("grpc.use_local_subchannel_pool", 1)]
        self.platform = grpc.aio.insecure_channel(target, options=opts)
        self.agent_channels = [
            grpc.aio.insecure_channel(target, options=opts) for _ in range(plan.agent_channels)
        ]
        self.meta = (("authorization", f"Bearer {secret}"),)
        self.contacts: Any = contact_service_pb2_grpc.ContactServiceStub(self.platform)
        self.health = health_pb2_grpc.HealthStub(self.platform)
        self.plan = plan
        self.rng = random.Random(plan.seed + 1)
        self.seq = itertools.count()
        self.submitted: dict[int, float] = {}  # seq -> submit time (scheduled, open loop)
        self.offered: dict[int, float] = {}  # seq -> arrival of the first offer
        self.server_ms: dict[int, float] = {}  # seq -> offer_time - create_time
        self.submit_rtt: dict[int, float] = {}
        self.errors: collections.Counter[str] = collections.Counter()
        self.completed = 0
        self.last_contact = ""
        self._streams: list[Any] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.offer_arrived = asyncio.Event()

    # agents ------------------------------------------------------------------------------

    def _agent_stub(self, n: int) -> Any:  # the stubs' types describe the sync API
        channel = self.agent_channels[n % len(self.agent_channels)]
        return agent_service_pb2_grpc.AgentServiceStub(channel)

    async def open_streams(self) -> None:
        """One StreamOffers per agent, then sign every agent in."""
        for n in range(self.plan.agents):
            call = self._agent_stub(n).StreamOffers(
                agent_service_pb2.StreamOffersRequest(name=f"tenants/{TENANT}/agents/a{n:04d}"),
                metadata=self.meta,
            )
            self._streams.append(call)
            self._spawn(self._listen(n, call))
        await asyncio.sleep(1.5)  # let the server subscribe every stream before offers flow
        gate = asyncio.Semaphore(self.plan.concurrency)

        async def sign_in(n: int) -> None:
            async with gate:
                await self._agent_stub(n).SignIn(
                    agent_service_pb2.SignInRequest(name=f"tenants/{TENANT}/agents/a{n:04d}"),
                    metadata=self.meta,
                )

        await asyncio.gather(*(sign_in(n) for n in range(self.plan.agents)))

    async def _listen(self, n: int, call: Any) -> None:
        try:
            async for event in call:
                if not event.HasField("offer"):
                    continue
                arrived = time.perf_counter()
                offer = event.offer
                seq = int(offer.contact.attributes.get("seq", "-1"))
                if seq >= 0 and seq not in self.offered:
                    self.offered[seq] = arrived
                    c = offer.contact
                    self.server_ms[seq] = (
                        c.offer_time.ToMilliseconds() - c.create_time.ToMilliseconds()
                    )
                    self.offer_arrived.set()
                if self.plan.lifecycle:
                    self._spawn(self._handle(n, offer.name, offer.token))
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                self.errors[f"stream {_why(exc)}"] += 1
        except asyncio.CancelledError:
            pass

    async def _handle(self, n: int, name: str, token: int) -> None:
        """The desktop accepts and completes at once, so the agent's slot frees."""
        stub = self._agent_stub(n)
        try:
            await stub.AcceptOffer(
                agent_service_pb2.AcceptOfferRequest(name=name, token=token), metadata=self.meta
            )
            await stub.CompleteContact(
                agent_service_pb2.CompleteContactRequest(
                    name=name, token=token, outcome=resources_pb2.OUTCOME_RESOLVED
                ),
                metadata=self.meta,
            )
            self.completed += 1
        except grpc.aio.AioRpcError as exc:
            self.errors[f"accept/complete {_why(exc)}"] += 1

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Cancel the streams and close the channels."""
        for call in self._streams:
            call.cancel()
        await asyncio.sleep(0.2)
        for channel in (self.platform, *self.agent_channels):
            await channel.close(grace=None)

    # platform ----------------------------------------------------------------------------

    def _request(self, seq: int) -> contact_service_pb2.SubmitContactRequest:
        rng = self.rng
        channel = rng.choices([c for c, _ in CHANNEL_MIX], [w for _, w in CHANNEL_MIX])[0]
        customer = rng.randrange(self.plan.customers)
        return contact_service_pb2.SubmitContactRequest(
            parent=f"tenants/{TENANT}",
            contact=resources_pb2.Contact(
                channel=channel,
                issue=issue(rng.randrange(self.plan.skills)),
                identities=[
                    resources_pb2.Identity(
                        kind=resources_pb2.IDENTITY_KIND_PHONE, value=f"+1555{customer:07d}"
                    )
                ],
                attributes={"seq": str(seq)},
            ),
        )

    async def submit(self, seq: int, at: float | None = None) -> None:
        """Submit contact `seq`; its clock starts at `at` (the schedule) or now."""
        request = self._request(seq)
        started = time.perf_counter()
        self.submitted[seq] = started if at is None else at
        try:
            reply = await self.contacts.SubmitContact(request, metadata=self.meta)
            self.last_contact = reply.name
        except grpc.aio.AioRpcError as exc:
            self.errors[f"submit {_why(exc)}"] += 1
            self.submitted.pop(seq, None)
            return
        self.submit_rtt[seq] = time.perf_counter() - started

    async def closed_loop(self, phase: Phase, seconds: float) -> None:
        """`concurrency` submitters, each submitting again as soon as it has its reply."""
        deadline = time.perf_counter() + seconds

        async def submitter() -> None:
            while time.perf_counter() < deadline:
                seq = next(self.seq)
                phase.seqs.append(seq)
                await self.submit(seq)

        await asyncio.gather(*(submitter() for _ in range(self.plan.concurrency)))

    async def open_loop(self, phase: Phase, rate: float, seconds: float) -> None:
        """Submissions on a fixed schedule at `rate` per second, whatever the replies."""
        count = max(1, int(rate * seconds))
        start = time.perf_counter() + 0.05
        pending: list[asyncio.Task[None]] = []
        for i in range(count):
            at = start + i / rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            seq = next(self.seq)
            phase.seqs.append(seq)
            pending.append(asyncio.create_task(self.submit(seq, at)))
        await asyncio.gather(*pending)

    async def drain(self, phase: Phase, timeout_s: float = DRAIN_S) -> int:
        """Wait until every submitted contact of `phase` was offered; returns those never."""
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            missing = [s for s in phase.seqs if s in self.submitted and s not in self.offered]
            if not missing:
                return 0
            self.offer_arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.offer_arrived.wait(), timeout=0.5)
        return len([s for s in phase.seqs if s in self.submitted and s not in self.offered])

    # baselines ---------------------------------------------------------------------------

    async def rate_of(self, call: Any, seconds: float) -> tuple[float, list[float]]:
        """Calls per second of `call()` with `concurrency` in flight; and latencies (s)."""
        deadline = time.perf_counter() + seconds
        latencies: list[float] = []

        async def worker() -> None:
            while (t := time.perf_counter()) < deadline:
                await call()
                latencies.append(time.perf_counter() - t)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(self.plan.concurrency)))
        return len(latencies) / (time.perf_counter() - started), latencies


def _why(exc: grpc.aio.AioRpcError) -> str:
    return f"{exc.code().name}: {(exc.details() or '')[:60]}"


def redis_benchmark(url: str, concurrency: int, requests: int) -> float | None:
    """PING_MBULK requests per second from the C client, if redis-benchmark is installed."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return None
    u = urlparse(url)
    cmd = [binary, "-h", u.hostname or "127.0.0.1", "-p", str(u.port), "-t", "ping",
           "-c", str(concurrency), "-n", str(requests), "-q"]  # fmt: skip
    env = {**os.environ, "REDISCLI_AUTH": u.password or ""}
    if u.password:
        cmd[1:1] = ["-a", u.password]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, env=env, check=False
    ).stdout
    for line in reversed(out.replace("\r", "\n").splitlines()):
        if line.startswith("PING_MBULK:") and "requests per second" in line:
            return float(line.split()[1])
    return None


# --- the run ----------------------------------------------------------------------------


def _ms(seconds: Sequence[float], q: float) -> float:
    return round(percentile(seconds, q) * 1000, 2)


def _latencies(floor: Floor, phase: Phase) -> dict[str, float]:
    lat = [floor.offered[s] - floor.submitted[s] for s in phase.seqs if s in floor.offered]
    server = [floor.server_ms[s] for s in phase.seqs if s in floor.server_ms]
    rtt = [floor.submit_rtt[s] for s in phase.seqs if s in floor.submit_rtt]
    return {
        "offered": len(lat),
        "p50_ms": _ms(lat, 0.50),
        "p99_ms": _ms(lat, 0.99),
        "max_ms": _ms(lat, 1.0),
        "server_p50_ms": round(percentile(server, 0.50), 1),
        "server_p99_ms": round(percentile(server, 0.99), 1),
        "submit_rtt_p50_ms": _ms(rtt, 0.50),
        "submit_rtt_p99_ms": _ms(rtt, 0.99),
    }


async def measure(
    target: str, secret: str, plan: Plan, url: str, pids: dict[str, int], profile: Path | None
) -> dict[str, Any]:
    """Every phase against the running server; the figures."""
    floor = Floor(target, secret, plan)
    figures: dict[str, Any] = {}
    cpu = CpuMeter(pids)
    try:
        await wait_serving(floor.platform, _Proc(pids["server"]))
        await floor.open_streams()
        cpu.start()
        await asyncio.sleep(plan.baseline_s)
        figures["idle_cpu"] = cpu.stop()

        warm = Phase("warm-up")
        await floor.closed_loop(warm, plan.warmup_s)
        figures["warmup_unoffered"] = await floor.drain(warm)

        async def noop() -> None:
            await floor.health.Check(health_pb2.HealthCheckRequest())

        cpu.start()
        rate, lat = await floor.rate_of(noop, plan.baseline_s)
        figures["noop_grpc"] = {"rate": round(rate), "p50_ms": _ms(lat, 0.5), "cpu": cpu.stop()}

        get = contact_service_pb2.GetContactRequest(name=floor.last_contact)

        async def one_read() -> None:
            await floor.contacts.GetContact(get, metadata=floor.meta)

        cpu.start()
        rate, lat = await floor.rate_of(one_read, plan.baseline_s)
        figures["get_contact"] = {"rate": round(rate), "p50_ms": _ms(lat, 0.5), "cpu": cpu.stop()}

        redis = redis_client(url)
        try:
            cpu.start()
            rate, lat = await floor.rate_of(redis.ping, plan.baseline_s)
            figures["redis_ping"] = {
                "rate": round(rate), "p50_ms": _ms(lat, 0.5), "cpu": cpu.stop()
            }  # fmt: skip
        finally:
            await redis.aclose()
        figures["redis_benchmark_ping"] = redis_benchmark(url, plan.concurrency, 200_000)

        # Saturation: the measured window starts after a warm-up of the same load.
        sat = Phase("saturation")
        t0 = time.perf_counter()
        cpu.start()
        await floor.closed_loop(sat, plan.warmup_s + plan.saturation_s)
        t1 = time.perf_counter()
        sat_cpu = cpu.stop()
        window = (t0 + plan.warmup_s, t1)
        routed = sum(1 for t in floor.offered.values() if window[0] <= t < window[1])
        submitted = sum(
            1 for s in sat.seqs if s in floor.submitted and window[0] <= floor.submitted[s] < t1
        )
        span = window[1] - window[0]
        unoffered = await floor.drain(sat)
        figures["saturation"] = {
            "routed_per_s": round(routed / span),
            "submitted_per_s": round(submitted / span),
            "unoffered_after_drain": unoffered,
            "cpu": sat_cpu,
            **_latencies(floor, sat),
        }

        # Latency at half the maximum rate, open loop.
        rate = figures["saturation"]["routed_per_s"] / 2
        lat_phase = Phase("half-rate")
        cpu.start()
        await floor.open_loop(lat_phase, rate, plan.latency_s)
        half_cpu = cpu.stop()
        unoffered = await floor.drain(lat_phase)
        figures["half_rate"] = {
            "arrival_per_s": round(rate),
            "unoffered_after_drain": unoffered,
            "cpu": half_cpu,
            **_latencies(floor, lat_phase),
        }

        if profile is not None:
            figures["profile"] = await profile_saturation(floor, pids["server"], plan, profile)
        figures["completed"] = floor.completed
        figures["errors"] = dict(floor.errors)
    finally:
        await floor.close()
    return figures


@dataclass
class _Proc:
    """Enough of a Popen for wait_serving: is the pid still alive?"""

    pid: int
    returncode: int | None = None

    def poll(self) -> int | None:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            self.returncode = -1
        return self.returncode


async def profile_saturation(floor: Floor, pid: int, plan: Plan, out: Path) -> dict[str, Any]:
    """py-spy record of the server during another saturation run (figures not counted)."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(binary).exists():
        return {"error": "py-spy not installed (pip install py-spy)"}
    out.mkdir(parents=True, exist_ok=True)
    raw = out / "server.pyspy.txt"
    seconds = max(5, int(plan.saturation_s))
    proc = await asyncio.create_subprocess_exec(
        binary, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200",
        "--format", "raw", "--idle", "--threads", "--output", str(raw),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    phase = Phase("profiled")
    await floor.closed_loop(phase, seconds + 1)
    await proc.wait()
    await floor.drain(phase)
    if not raw.exists():
        return {"error": f"py-spy wrote nothing (exit {proc.returncode})"}
    summary = summarise_profile(raw.read_text())
    (out / "server.top.json").write_text(json.dumps(summary, indent=2))
    return summary


def summarise_profile(text: str, top: int = 25) -> dict[str, Any]:
    """Self and inclusive shares of samples per function from py-spy's raw format."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in text.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = stack.split(";")
        thread, frames = frames[0], [_frame(f) for f in frames[1:]]
        if "MainThread" not in thread:
            continue  # grpc's poller thread: blocked in C, idle or not
        total += count
        if frames and frames[-1].startswith("EpollSelector.select"):
            idle += count
        if frames:
            own[frames[-1]] += count
        for f in set(frames):
            incl[f] += count

    def share(c: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in c.most_common(top)]

    return {
        "main_thread_samples": total,
        "idle_pct": round(100 * idle / max(total, 1), 1),
        "self": share(own),
        "inclusive": share(incl),
    }


def _frame(frame: str) -> str:
    """'func (path/to/file.py:123)' -> 'func (file.py)'."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if parts else path
    return f"{name} ({short})"


def report(figures: dict[str, Any], plan: Plan, info: dict[str, Any]) -> str:
    """The printed table and ratios."""
    sat, half = figures["saturation"], figures["half_rate"]
    noop, one, ping = figures["noop_grpc"], figures["get_contact"], figures["redis_ping"]
    ratio = sat["routed_per_s"] / noop["rate"] if noop["rate"] else float("nan")
    c = plan.concurrency

    def cpu(d: dict[str, float]) -> str:
        return " / ".join(f"{d[k]:.0f}" for k in ("server", "redis", "client", "others"))

    rows = [
        [f"no-op gRPC (Health/Check, {c} in flight)", f"{noop['rate']:,}/s",
         f"{noop['p50_ms']:.2f}", "", cpu(noop["cpu"])],
        [f"one-read gRPC (GetContact, {c} in flight)", f"{one['rate']:,}/s",
         f"{one['p50_ms']:.2f}", "", cpu(one["cpu"])],
        [f"Redis PING (redis-py asyncio, {c} in flight)", f"{ping['rate']:,}/s",
         f"{ping['p50_ms']:.2f}", "", cpu(ping["cpu"])],
        [f"Redis PING (redis-benchmark -c {c})",
         f"{figures['redis_benchmark_ping']:,.0f}/s" if figures["redis_benchmark_ping"] else "-",
         "", "", ""],
        [f"routing, saturation ({c} submitters)", f"{sat['routed_per_s']:,}/s",
         f"{sat['p50_ms']:.2f}", f"{sat['p99_ms']:.2f}", cpu(sat["cpu"])],
        [f"routing, open loop at {half['arrival_per_s']:,}/s (half)",
         f"{half['offered'] / plan.latency_s:,.0f}/s",
         f"{half['p50_ms']:.2f}", f"{half['p99_ms']:.2f}", cpu(half["cpu"])],
    ]  # fmt: skip
    lines = [
        "Omniroute routing benchmark",
        f"machine: {info['cpus']} CPUs ({info['cpus_usable']} usable), {info['cpu_model']}; "
        f"Python {info['python']}, grpcio {info['grpcio']}, protobuf {info['protobuf']}, "
        f"redis-py {info['redis_py']}, redis-server {info['redis_server']}",
        f"load: {plan.agents} agents (3-6 of {plan.skills} skills, proficiency 1-5; voice 1, "
        f"chat 3, email 2 for a third), {plan.skills} rules, {plan.customers} customers; "
        f"{plan.agents} StreamOffers streams; "
        + (
            "every offer accepted and completed at once (the whole life: 4 RPCs a contact)"
            if plan.lifecycle
            else "capacity to spare, offers left open (routing only: submit -> offer)"
        ),
        f"server settings: {info['server_env'] or 'defaults'}; server CPU with the streams "
        f"open and no traffic: {figures['idle_cpu']['server']:.0f}% of a core (other "
        f"processes: {figures['idle_cpu']['others']:.0f}%)",
        "",
        table(rows, ["figure", "rate", "p50 ms", "p99 ms", "CPU % server/redis/client/others"]),
        "",
        f"routing rate / no-op gRPC rate: {ratio:.1%} (target >= {RATE_TARGET:.0%}) "
        f"{'MET' if ratio >= RATE_TARGET else 'MISSED'}",
        f"p99 submit->offer at half rate: {half['p99_ms']:.2f} ms (target <= "
        f"{P99_TARGET_MS:.0f} ms) {'MET' if half['p99_ms'] <= P99_TARGET_MS else 'MISSED'}",
        f"server's view (offer_time - create_time, Redis clock, ms): saturation p50 "
        f"{sat['server_p50_ms']} p99 {sat['server_p99_ms']}; half rate p50 "
        f"{half['server_p50_ms']} p99 {half['server_p99_ms']}",
        f"SubmitContact round trip at half rate: p50 {half['submit_rtt_p50_ms']} ms, p99 "
        f"{half['submit_rtt_p99_ms']} ms; submitted at saturation {sat['submitted_per_s']:,}/s",
        f"not offered within {DRAIN_S:.0f} s: saturation {sat['unoffered_after_drain']}, half "
        f"rate {half['unoffered_after_drain']}; completed {figures['completed']:,}; "
        f"errors {figures['errors'] or 'none'}",
    ]
    prof = figures.get("profile")
    if prof and "self" in prof:
        lines += [
            "",
            f"server profile at saturation (py-spy, main thread, {prof['main_thread_samples']} "
            f"samples; idle in epoll {prof['idle_pct']}%):",
        ]
        lines += ["  self:"] + [f"    {v:5.1f}%  {k}" for k, v in prof["self"][:15]]
        lines += ["  inclusive:"] + [f"    {v:5.1f}%  {k}" for k, v in prof["inclusive"][:25]]
    elif prof:
        lines += ["", f"profile: {prof['error']}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the table (or JSON)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short phases (about 20-30 s)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--concurrency", type=int, help="calls in flight (default 64)")
    p.add_argument("--agents", type=int, help="agents, each with a stream (default 1000)")
    p.add_argument("--profile", type=Path, metavar="DIR", help="py-spy the server into DIR")
    p.add_argument(
        "--lifecycle",
        action="store_true",
        help="desktops accept and complete every offer (default: routing only)",
    )
    p.add_argument(
        "--intelligence",
        action="store_true",
        help="rules with history affinity (20 s wait for the last agent) and repeat boost",
    )
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="OMNIROUTE_X=V",
        help="a setting for the server (experiments; the headline uses the defaults)",
    )
    p.add_argument(
        "--traces",
        action="store_true",
        help="the server exports traces over OTLP to a sink process (benchmarks/otlp_sink.py)",
    )
    ns = p.parse_args(argv)
    plan = Plan.quick() if ns.quick else Plan()
    overrides: dict[str, Any] = {
        k: v for k, v in (("concurrency", ns.concurrency), ("agents", ns.agents)) if v
    }
    overrides["lifecycle"] = ns.lifecycle
    overrides["intelligence"] = ns.intelligence
    plan = Plan(**{**plan.__dict__, **overrides})
    logs.configure(json=False, level="warning")
    info: dict[str, Any] = machine()
    extra_env = dict(item.split("=", 1) for item in ns.server_env)
    if any(not k.startswith(("OMNIROUTE_", "OTEL_")) for k in extra_env):
        p.error("--server-env takes OMNIROUTE_NAME=VALUE (or an OTEL_ variable)")
    if not plan.lifecycle:  # offers stay open for the whole run
        extra_env.setdefault("OMNIROUTE_OFFER_TIMEOUT_S", "3600")
    info["server_env"] = extra_env
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="omr-bench-") as tmp:
        embedded = EmbeddedRedis(Path(tmp) / "redis", persistent=False)
        url = embedded.start()
        try:
            info["redis_server"] = embedded.version
            secret = asyncio.run(populate(url, plan))
            port = free_port()
            data = Path(tmp) / "data"
            data.mkdir()
            sink = otlp_sink(extra_env, data) if ns.traces else contextlib.nullcontext()
            with sink as spans, server_process(url, port, data, extra_env) as proc:
                pids = {"server": proc.pid, "redis": _redis_pid(embedded), "client": os.getpid()}
                try:
                    figures = asyncio.run(
                        measure(f"127.0.0.1:{port}", secret, plan, url, pids, ns.profile)
                    )
                except BaseException:
                    sys.stderr.write((data / "server.log").read_text()[-4000:])
                    raise
        finally:
            embedded.stop()
    if ns.traces:
        info["spans_exported"] = spans.get("spans", "?")
    info["wall_s"] = round(time.perf_counter() - started, 1)
    result = {"machine": info, "plan": plan.__dict__, "figures": figures}
    if ns.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(report(figures, plan, info))
        if "spans_exported" in info:
            print(f"spans received by the OTLP sink: {info['spans_exported']}")
        print(f"\n(wall time {info['wall_s']} s)")
    return 0


@contextlib.contextmanager
def otlp_sink(extra_env: dict[str, str], data_dir: Path) -> Any:
    """An OTLP sink in a child process, and the server's settings to export to it; yields
    a dict that holds the spans it received once it has stopped."""
    port = free_port()
    extra_env["OMNIROUTE_TRACE_EXPORTER"] = "otlp"
    extra_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{port}"
    out = data_dir.parent / "sink.out"
    script = Path(__file__).resolve().parent / "otlp_sink.py"
    with open(out, "wb") as log:
        proc = subprocess.Popen([sys.executable, str(script), "--port", str(port)], stdout=log)
        counts: dict[str, Any] = {}
        try:
            yield counts
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    last = out.read_text().strip().splitlines()[-1:]
    counts.update(kv.split("=", 1) for kv in (last[0].split() if last else []))


def _redis_pid(embedded: EmbeddedRedis) -> int:
    process = getattr(embedded, "_process", None)
    return int(process.pid) if process is not None else os.getpid()


if __name__ == "__main__":
    sys.exit(main())
