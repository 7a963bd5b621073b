"""Scale-out and per-tenant capacity of the live service: routing decisions per second and
submit->offer latency against 1, 2 and 4 router replicas on one Redis and on a 3-shard
Redis Cluster, with arrivals at a fixed rate; then, per tenant, the most agents and waiting
contacts at which p99 submit->offer stays <= 10 ms and Lua scripts <= 1 ms, with Redis
memory per agent and per waiting contact (MEMORY USAGE).

Run by hand (a script, not a timed test; loopback only, bounded in time)::

    .venv/bin/python benchmarks/bench_scale.py --quick   # about 3 minutes
    .venv/bin/python benchmarks/bench_scale.py           # about 12-15 minutes
    .venv/bin/python benchmarks/bench_scale.py --json    # figures as JSON on stdout

Processes, all on loopback:

- **Redis.** One ``redis-server`` (not persistent), and a Redis Cluster of three primaries
  (``--cluster-replicas`` replicas each, none by default) built by the same code as
  ``tests/cluster/harness.py`` from the system's ``redis-server`` and ``redis-cli``.
- **Routers.** N real ``omniroute serve`` processes (``--log-level warning``,
  ``--metrics-port``), restarted for every configuration; the data is flushed between
  configurations.
- **This script** plays the platform and every agent desktop. Tenants (hash tag each,
  ``--tenants``, chosen so that the cluster spreads them over its primaries) get rules and
  agents written through ``Supervision`` before the routers start. Each agent opens its
  own ``StreamOffers`` on one replica (agents spread over replicas), signs in, and accepts
  and completes every offer at once (4 RPCs per contact: submit, offer, accept, complete).
  The platform submits on an **open loop**: a Poisson schedule (``--arrivals even`` for
  evenly spaced) at a fixed total rate over the tenants, round-robin over the replicas,
  never waiting on replies.

Figures per configuration and rate step:

- decisions/s: the step's contacts offered on the agents' streams, over the time from the
  step's start to its last offer (the arrival rate when the replicas keep up, less when
  they lag);
- submit->offer p50/p99: from the **scheduled** submit time to the offer's arrival on the
  agent's stream, this process's clock (coordinated omission included); the server's view
  beside it (the offer's ``offer_time - create_time``, Redis clock, ms resolution);
- lost races per routed contact (``omniroute_routing_decisions_total`` from every replica's
  ``/metrics``): the price of several replicas routing the same tenant;
- scripts: Redis's own EVALSHA execution time p50/p99 (``INFO latencystats`` after
  ``CONFIG RESETSTAT``; worst node), and the replicas' round trip of every script call
  (``omniroute_redis_script_seconds``, p99 as the histogram bucket it falls in); and every
  command over 1 ms in Redis (SLOWLOG), scripts by name: when plain O(1) commands show up
  there too, Redis lost its core (a busy machine), the scripts were not slow;
- CPU share of the replicas, Redis, this client and every other process of the machine.

The first configuration (1 replica x 1 Redis) is the baseline; every other one is shown as
a ratio of it at the same rate (and, unless --quick, the baseline runs again at the end to
show drift on a shared machine). A rate ladder stops once a step does not keep up.

Capacity, per tenant, on 1 replica and one Redis: one tenant with A agents (all with open
streams, signed in) and W waiting contacts (e-mails of an issue whose skill no signed-in
agent holds, so they stay queued: an after-hours team; their answer target is a week, so
they queue behind the run's contacts, see ``--backlog-target``), while contacts arrive at
``--capacity-rate``. Agents grow with W at its smallest, then W grows with A at 1,000; every
point runs (``--capacity-rounds`` measured rounds each, 2 by default, 1 with --quick; the
best is kept, since a busy machine only adds latency), and the largest passing one of each
ladder is reported, then both together.
Pass: every contact offered, p99 submit->offer <= 10 ms (on this client's clock; the
server's clock is judged too) and Redis's script p99 <= 1 ms. Memory: ``MEMORY USAGE ...
SAMPLES 0`` of a sample of agents' and waiting contacts' own keys, plus their share of the
index keys they are members of; ``used_memory`` growth per created agent and per queued
contact beside it. And the routing core's CPU on a floor like the point's, timed in this
process: deciding one contact, the same with the backlog's share of the queue head (a pass
reads 256), and building one decision's explanation (its top candidates).

``--only matrix|capacity`` runs one half; ``--server-env OMNIROUTE_X=V`` sets a replica
setting (e.g. ``OMNIROUTE_EXPLAIN_CANDIDATES=0``); ``--json-out FILE`` keeps the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import itertools
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import grpc
import redis
from _common import CpuMeter, free_port, machine, percentile, redis_server_version
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from redis.crc import key_slot
from rich.console import Console
from rich.table import Table

from queues.embedded import EmbeddedRedis
from queues.records import contact_fields
from queues.scripts import SCRIPT_NAMES, read_lua
from queues.state import RedisState
from router import logs
from router.assign import Floor as CoreFloor
from router.assign import rule_for
from router.auth import Role
from router.config import Settings
from router.domain import Agent, AgentId, AgentState, Channel, Contact, ContactId, TenantId
from router.explain import explanation
from router.pb.omniroute.v1 import (
    agent_service_pb2,
    agent_service_pb2_grpc,
    contact_service_pb2,
    contact_service_pb2_grpc,
    resources_pb2,
)
from router.policy import decide
from router.rules import Rule, RuleBook
from router.server import redis_client
from router.supervision import Supervision
from tests.cluster.harness import LocalCluster, _pick_ports, tools_missing

ROOT = Path(__file__).resolve().parents[1]
P99_TARGET_MS = 10.0
SCRIPT_TARGET_US = 1000.0
CHANNEL_MIX = ((resources_pb2.CHANNEL_VOICE, 0.4), (resources_pb2.CHANNEL_CHAT, 0.4),
               (resources_pb2.CHANNEL_EMAIL, 0.2))  # fmt: skip
BACKLOG_ISSUE = "backlog"
BACKLOG_SKILL = "after_hours"  # required by the backlog's rule; no agent of the run holds it
CAPACITY_TENANT = TenantId("cap")
QUEUE_SCAN = Settings().queue_scan  # contacts of the queue head a routing pass reads
DRAIN_S = 10.0
#: A step keeps up when every contact is offered and the last one within this share of the
#: step's length (1 s at least) after the step's end: the queue did not grow.
MAX_LAG = 0.1


@dataclass(frozen=True)
class Plan:
    """Sizes, rates and durations of one run."""

    replicas: tuple[int, ...] = (1, 2, 4)
    shards: tuple[int, ...] = (1, 3)
    tenants: int = 3
    agents: int = 200  # per tenant, in the scale matrix
    skills: int = 20  # per tenant: one rule per skill
    customers: int = 1000  # per tenant
    rates: tuple[float, ...] = (50.0, 100.0, 200.0, 300.0)  # contacts/s over all tenants
    step_s: float = 10.0
    warmup_s: float = 2.0
    arrivals: str = "poisson"
    cluster_replicas: int = 0
    repeat_baseline: bool = True
    capacity_agents: tuple[int, ...] = (100, 1000, 5000, 10000)
    capacity_waiting: tuple[int, ...] = (1000, 10000, 50000)
    capacity_rate: float = 25.0
    capacity_s: float = 12.0
    #: Measured rounds per capacity point (the same replica, one after the other).
    capacity_rounds: int = 2
    #: The backlog's answer target: a week, so that in queue order (priority, then arrival
    #: plus target) it waits behind every contact of the run, e-mails included (4 h). Ahead
    #: of them, more than ``queue_scan`` (256) contacts nobody can take hide every contact
    #: behind them from routing (the pass reads only the queue's head): 14400 shows it.
    backlog_target_s: float = 7 * 86400.0
    #: OMNIROUTE_* settings for every replica (experiments; the defaults otherwise).
    server_env: tuple[tuple[str, str], ...] = ()
    seed: int = 7

    @classmethod
    def quick(cls) -> Plan:
        """About 3 minutes in all."""
        return cls(
            agents=100,
            rates=(40.0, 120.0),
            step_s=4.0,
            warmup_s=1.5,
            repeat_baseline=False,
            capacity_agents=(100, 1000),
            capacity_waiting=(1000, 10000),
            capacity_s=6.0,
            capacity_rounds=1,
        )


# --- Redis: one server, or a cluster --------------------------------------------------


@dataclass
class Shards(LocalCluster):
    """tests/cluster/harness.py's cluster with `replicas` replicas per primary (0: three
    primaries only, the default here: replication would take CPU from the routers)."""

    replicas: int = 0

    def start(self) -> Shards:
        """Start the nodes, create the cluster, wait until every slot is served."""
        self.ports = _pick_ports(self.size)
        for port in self.ports:
            self.start_node(port)
        subprocess.run(
            ["redis-cli", "-a", self.password, "--no-auth-warning", "--cluster", "create",
             *[f"127.0.0.1:{p}" for p in self.ports], "--cluster-replicas", str(self.replicas),
             "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        self.wait_ready()
        return self


class Store:
    """One Redis or a cluster: its URL, its primaries (plain clients), its processes."""

    def __init__(self, name: str, shards: int, url: str, primaries: list[redis.Redis],
                 pids: list[int]) -> None:  # fmt: skip
        self.name, self.shards, self.url = name, shards, url
        self.primaries, self.pids = primaries, pids

    def flush(self) -> None:
        """Forget every key (scripts stay loaded)."""
        for node in self.primaries:
            node.flushall()

    def reset_stats(self) -> None:
        """Zero the command and latency statistics of every primary; log every command
        slower than the script target from now on (SLOWLOG)."""
        for node in self.primaries:
            node.config_resetstat()
            node.config_set("slowlog-log-slower-than", int(SCRIPT_TARGET_US))
            node.config_set("slowlog-max-len", 1024)
            node.slowlog_reset()

    def slow_scripts(self) -> dict[str, list[int]]:
        """Commands over the script target since the reset: [count, slowest us] by script
        name (EVALSHA) or command."""
        # EVALSHA names a script by the SHA-1 of its source.
        names = {hashlib.sha1(read_lua(n).encode()).hexdigest(): n for n in SCRIPT_NAMES}
        slow: dict[str, list[int]] = {}
        for node in self.primaries:
            for entry in node.slowlog_get(1024):
                command = entry["command"]
                if isinstance(command, bytes):
                    command = command.decode(errors="replace")
                args = str(command).split()
                name = args[0].upper() if args else "?"
                if name == "EVALSHA" and len(args) > 1:
                    name = names.get(args[1], "EVALSHA ?")
                seen = slow.setdefault(name, [0, 0])
                seen[0] += 1
                seen[1] = max(seen[1], int(entry["duration"]))
        return dict(sorted(slow.items(), key=lambda kv: -kv[1][0]))

    def script_stats(self) -> dict[str, float]:
        """EVALSHA/EVAL calls since the reset, and their execution time in Redis: mean and
        the worst primary's p50/p99/p99.9 (microseconds)."""
        calls, usec = 0, 0.0
        worst: dict[str, float] = {"p50": 0.0, "p99": 0.0, "p99.9": 0.0}
        for node in self.primaries:
            commands = node.info("commandstats")
            for name in ("cmdstat_evalsha", "cmdstat_eval"):
                if name in commands:
                    calls += int(commands[name]["calls"])
                    usec += float(commands[name]["usec"])
            latency = node.info("latencystats")
            for name in ("latency_percentiles_usec_evalsha", "latency_percentiles_usec_eval"):
                for q, v in _percentiles(latency.get(name)).items():
                    worst[q] = max(worst.get(q, 0.0), v)
        return {
            "calls": calls,
            "mean_us": round(usec / calls, 1) if calls else math.nan,
            "p50_us": worst["p50"],
            "p99_us": worst["p99"],
            "p999_us": worst["p99.9"],
        }

    def used_memory(self) -> int:
        """Bytes used by every primary (INFO memory used_memory)."""
        return sum(int(node.info("memory")["used_memory"]) for node in self.primaries)


def _percentiles(raw: Any) -> dict[str, float]:
    """'p50=1.0,p99=2.0' (or redis-py's parsed dict of it) as numbers."""
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return {str(k): float(v) for k, v in raw.items()}
    return {k: float(v) for k, _, v in (p.partition("=") for p in str(raw).split(","))}


@contextlib.contextmanager
def single_redis(folder: Path) -> Iterator[Store]:
    """One redis-server, not persistent."""
    embedded = EmbeddedRedis(folder, persistent=False)
    url = embedded.start()
    client = redis.Redis.from_url(url, decode_responses=True)
    process = getattr(embedded, "_process", None)
    try:
        yield Store("1 Redis", 1, url, [client], [int(process.pid)] if process else [])
    finally:
        client.close()
        embedded.stop()


@contextlib.contextmanager
def cluster_redis(folder: Path, replicas: int) -> Iterator[Store]:
    """Three primaries (and `replicas` replicas each) joined into a Redis Cluster."""
    reason = tools_missing()
    if reason:
        raise SystemExit(reason)
    with Shards(folder, size=3 * (1 + replicas), replicas=replicas) as cluster:
        primaries = [cluster.node(p) for p in cluster.primaries()]
        try:
            pids = [proc.pid for proc in cluster.procs.values()]
            yield Store(f"3 shards (+{replicas} replica/primary)" if replicas else "3 shards", 3,
                        cluster.url, primaries, pids)  # fmt: skip
        finally:
            for node in primaries:
                node.close()


def spread_tenants(count: int, store: Store | None) -> list[str]:
    """`count` tenant ids whose hash tags fall on the cluster's primaries evenly (in turn)."""
    if store is None or store.shards == 1:
        return [f"tenant{i:02d}" for i in range(count)]
    ranges = []  # (first slot, last slot, primary)
    for first, last, primary, *_ in store.primaries[0].execute_command("CLUSTER SLOTS"):  # type: ignore[no-untyped-call]
        ranges.append((int(first), int(last), f"{primary[0]}:{primary[1]}"))
    owners = sorted({r[2] for r in ranges})

    def owner(name: str) -> str:
        slot = key_slot(f"{{{name}}}".encode())
        return next(r[2] for r in ranges if r[0] <= slot <= r[1])

    chosen: list[str] = []
    names = (f"tenant{i:02d}" for i in itertools.count())
    while len(chosen) < count:
        want = owners[len(chosen) % len(owners)]
        chosen.append(next(n for n in names if owner(n) == want))
    return chosen


# --- seeding ------------------------------------------------------------------------------


def issue(k: int) -> str:
    """Issue k; its rule requires the skill of the same name."""
    return f"topic{k:02d}"


def make_agent(n: int, rng: random.Random, plan: Plan) -> Agent:
    """Agent n of a tenant: 3-6 skills at 1-5; voice 1, chat 3, e-mail 2 for a third."""
    count = rng.randint(min(3, plan.skills), min(6, plan.skills))
    skills = {issue(k): rng.randint(1, 5) for k in rng.sample(range(plan.skills), count)}
    # Every issue has an agent on every channel, even on a small floor.
    skills[issue(n % plan.skills)] = 5
    capacity = {Channel.VOICE: 1, Channel.CHAT: 3}
    if n % 3 == 0:
        skills[issue(n // 3 % plan.skills)] = 5
        capacity[Channel.EMAIL] = 2
    return Agent(id=AgentId(agent_id(n)), skills=skills, capacity=capacity)


def make_rules(plan: Plan) -> list[Rule]:
    """A rule per skill (level 1 or 2), and the backlog's (a skill nobody holds)."""
    rules = [Rule(issue=issue(k), skills={issue(k): 1 + k % 2}) for k in range(plan.skills)]
    backlog = Rule(
        issue=BACKLOG_ISSUE,
        skills={BACKLOG_SKILL: 1},
        answer_target_s={Channel.EMAIL: plan.backlog_target_s},
    )
    return [*rules, backlog]


async def seed_tenants(url: str, tenants: Sequence[str], agents: int, plan: Plan) -> dict[str, str]:
    """Rules and agents of every tenant, written straight to Redis; the platform keys."""
    rng = random.Random(plan.seed)
    client = redis_client(url)
    secrets: dict[str, str] = {}
    try:
        supervision = Supervision(RedisState(client))
        gate = asyncio.Semaphore(64)

        async def create(tenant: TenantId, agent: Agent) -> None:
            async with gate:
                await supervision.create_agent(tenant, agent, "bench")

        for name in tenants:
            tenant = TenantId(name)
            rules = make_rules(plan)
            named = {skill for rule in rules for skill in rule.skills}
            await supervision.declare_skills(tenant, sorted(named), "bench")
            for rule in rules:
                await supervision.write_rule(tenant, rule, "create", "bench")
            await asyncio.gather(*(create(tenant, make_agent(n, rng, plan)) for n in range(agents)))
            _, secrets[name] = await supervision.create_api_key(
                tenant, Role.PLATFORM, "", "benchmark platform", "bench"
            )
    finally:
        await client.aclose()
    return secrets


def decision_cost(agents: int, waiting: int, plan: Plan) -> dict[str, float]:
    """CPU time of the routing core, in this process, on a floor like the capacity
    point's (every agent available): ms to decide one contact, to decide it with the
    waiting backlog's share of the queue head in the same pass, and to build one decision's
    explanation (its top candidates; ``OMNIROUTE_EXPLAIN_CANDIDATES``, 10 by default)."""
    rng = random.Random(plan.seed)
    floor = CoreFloor(
        replace(make_agent(n, rng, plan), state=AgentState.AVAILABLE) for n in range(agents)
    )
    rules = RuleBook(make_rules(plan))
    topic = issue(3 % plan.skills)
    contact = Contact(id=ContactId("x"), channel=Channel.CHAT, issue=topic, arrived_at=0.0)
    head = [
        Contact(id=ContactId(f"bk{i}"), channel=Channel.EMAIL, issue=BACKLOG_ISSUE, arrived_at=0)
        for i in range(min(waiting, QUEUE_SCAN - 1))
    ]
    routed = decide([contact], floor, rules, 1.0)
    rule = rule_for(rules, contact.issue)

    def ms(call: Any) -> float:
        # CPU time of this thread, not wall time: other processes taking the core while it
        # runs do not count (they would on a busy machine).
        started, cpu, n = time.perf_counter(), time.thread_time(), 0
        while time.perf_counter() - started < 0.3:
            call()
            n += 1
        return round((time.thread_time() - cpu) / n * 1000, 3)

    return {
        "decide_ms": ms(lambda: decide([contact], floor, rules, 1.0)),
        "decide_with_head_ms": ms(lambda: decide([contact, *head], floor, rules, 1.0)),
        "explanation_ms": (
            ms(lambda: explanation(routed[0].decision, rule, floor, 1.0)) if routed else math.nan
        ),
    }


def agent_id(n: int) -> str:
    """The id of agent n of a tenant."""
    return f"a{n:05d}"


async def seed_backlog(url: str, tenant: TenantId, count: int, target_s: float) -> float:
    """`count` waiting e-mails of the backlog issue, through the enqueue script the service
    uses (no customer: see the memory figures for what a customer adds); returns seconds."""
    client = redis_client(url)
    state = RedisState(client)
    gate = asyncio.Semaphore(64)
    started = time.perf_counter()

    async def one(i: int) -> None:
        cid = ContactId(f"bk{i:06d}")
        contact = Contact(id=cid, channel=Channel.EMAIL, issue=BACKLOG_ISSUE, arrived_at=0.0)
        async with gate:
            await state.enqueue(
                tenant, cid, contact_fields(contact, ()), BACKLOG_ISSUE, Channel.EMAIL, 0,
                int(target_s * 1000), "", "",
            )  # fmt: skip

    try:
        for first in range(0, count, 5000):  # bounded task count
            await asyncio.gather(*(one(i) for i in range(first, min(count, first + 5000))))
    finally:
        await client.aclose()
    return time.perf_counter() - started


# --- router replicas ----------------------------------------------------------------------


class Replicas:
    """`count` ``omniroute serve`` processes on one Redis URL, each with /metrics."""

    def __init__(
        self, url: str, count: int, folder: Path, env: Sequence[tuple[str, str]] = ()
    ) -> None:
        self.url, self.count, self.folder, self.env = url, count, folder, dict(env)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []
        self.metrics_ports: list[int] = []
        self._logs: list[Any] = []

    @property
    def targets(self) -> list[str]:
        """gRPC targets, one per replica."""
        return [f"127.0.0.1:{p}" for p in self.ports]

    def start(self) -> None:
        """Start every replica (then ``wait_serving``)."""
        env = {**os.environ, **self.env, "REDIS_URL": self.url}
        for i in range(self.count):
            port, metrics = free_port(), free_port()
            data = self.folder / f"replica{i}"
            data.mkdir(parents=True, exist_ok=True)
            log = open(data / "server.log", "wb")  # noqa: SIM115 - closed in stop()
            cmd = [
                sys.executable, "-c", "import sys; from router.cli import main; sys.exit(main())",
                "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data),
                "--no-dev-keys", "--log-level", "warning", "--metrics-port", str(metrics),
                "--grace", "1",
            ]  # fmt: skip
            self.procs.append(
                subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            )
            self._logs.append(log)
            self.ports.append(port)
            self.metrics_ports.append(metrics)

    async def wait_serving(self, timeout_s: float = 60.0) -> None:
        """Until every replica's Health/Check says SERVING."""
        deadline = time.monotonic() + timeout_s
        for proc, target in zip(self.procs, self.targets, strict=True):
            async with grpc.aio.insecure_channel(target) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                while True:
                    if proc.poll() is not None:
                        raise SystemExit(f"a replica exited with {proc.returncode}:\n{self.tail()}")
                    with contextlib.suppress(grpc.aio.AioRpcError):
                        reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                        if reply.status == health_pb2.HealthCheckResponse.SERVING:
                            break
                    if time.monotonic() > deadline:
                        raise SystemExit(f"a replica was not SERVING in {timeout_s:.0f} s")
                    await asyncio.sleep(0.1)

    def tail(self) -> str:
        """The end of every replica's log."""
        out = []
        for i in range(self.count):
            path = self.folder / f"replica{i}" / "server.log"
            if path.exists():
                out.append(f"-- replica {i}\n{path.read_text()[-2000:]}")
        return "\n".join(out)

    def rss_mb(self) -> float:
        """Resident memory of every replica, MB."""
        total = 0
        for proc in self.procs:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return round(total / 1024, 1)

    def scrape(self) -> dict[str, dict[tuple[str, ...], float]]:
        """Script latency buckets and routing decisions, summed over the replicas."""
        buckets: dict[tuple[str, ...], float] = collections.defaultdict(float)
        decisions: dict[tuple[str, ...], float] = collections.defaultdict(float)
        for port in self.metrics_ports:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
            except OSError:
                continue
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    if s.name == "omniroute_redis_script_seconds_bucket":
                        buckets[(s.labels["script"], s.labels["le"])] += s.value
                    elif s.name == "omniroute_routing_decisions_total":
                        decisions[(s.labels["result"], s.labels.get("reason", ""))] += s.value
        return {"buckets": dict(buckets), "decisions": dict(decisions)}

    def stop(self) -> None:
        """SIGTERM every replica; SIGKILL what is still there after 20 s."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self._logs:
            log.close()


def script_p99_bound(before: dict[str, Any], after: dict[str, Any], script: str = "") -> float:
    """Upper bound (ms) of the bucket holding the 99th percentile of script calls between two
    scrapes (all scripts, or one); NaN for no calls, inf beyond the last bucket."""
    per_le: dict[float, float] = collections.defaultdict(float)
    for (name, le), value in after["buckets"].items():
        if script and name != script:
            continue
        per_le[float(le)] += value - before["buckets"].get((name, le), 0.0)
    total = per_le.get(math.inf, 0.0)
    if total <= 0:
        return math.nan
    for le in sorted(per_le):
        if per_le[le] >= 0.99 * total:
            return le * 1000
    return math.inf


def decisions(before: dict[str, Any], after: dict[str, Any]) -> tuple[int, int]:
    """(routed, lost races) between two scrapes."""
    routed = lost = 0.0
    for (result, _), value in after["decisions"].items():
        delta = value - before["decisions"].get((result, _), 0.0)
        if result == "routed":
            routed += delta
        else:
            lost += delta
    return int(routed), int(lost)


# --- the client: platform and agent desktops ---------------------------------------------


@dataclass
class Step:
    """One fixed-rate step: its contacts by sequence number and its window."""

    rate: float
    seqs: list[int] = field(default_factory=list)
    t0: float = 0.0
    t1: float = 0.0


class Desks:
    """The platform and every agent desktop, in this process, on its clock."""

    def __init__(self, targets: list[str], secrets: dict[str, str], agents: int,
                 plan: Plan) -> None:  # fmt: skip
        opts = [("grpc.use_local_subchannel_pool", 1)]
        self.platform = [grpc.aio.insecure_channel(t, options=opts) for t in targets]
        self.agent_channels = [
            [grpc.aio.insecure_channel(t, options=opts) for _ in range(2)] for t in targets
        ]
        self.contacts: list[Any] = [
            contact_service_pb2_grpc.ContactServiceStub(ch) for ch in self.platform
        ]
        self.meta = {t: (("authorization", f"Bearer {s}"),) for t, s in secrets.items()}
        self.tenants = list(secrets)
        self.agents = [(t, agent_id(n)) for t in self.tenants for n in range(agents)]
        self.plan = plan
        self.rng = random.Random(plan.seed + 1)
        self.seq = itertools.count()
        self.turn = itertools.count()
        self.submitted: dict[int, float] = {}
        self.offered: dict[int, float] = {}
        self.server_ms: dict[int, float] = {}
        self.errors: collections.Counter[str] = collections.Counter()
        self.completed = 0
        self._streams: list[Any] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._handling: set[asyncio.Task[None]] = set()
        self.offer_arrived = asyncio.Event()

    def _agent_stub(self, k: int) -> Any:
        per_replica = self.agent_channels[k % len(self.agent_channels)]
        channel = per_replica[(k // len(self.agent_channels)) % len(per_replica)]
        return agent_service_pb2_grpc.AgentServiceStub(channel)

    async def open_streams(self) -> None:
        """A StreamOffers per agent (spread over the replicas), then sign every agent in."""
        for k, (tenant, agent) in enumerate(self.agents):
            call = self._agent_stub(k).StreamOffers(
                agent_service_pb2.StreamOffersRequest(name=f"tenants/{tenant}/agents/{agent}"),
                metadata=self.meta[tenant],
            )
            self._streams.append(call)
            self._spawn(self._listen(k, tenant, call), self._tasks)
        # Let the replicas subscribe every stream before offers flow.
        await asyncio.sleep(max(1.0, len(self.agents) / 2000))
        gate = asyncio.Semaphore(64)

        async def sign_in(k: int, tenant: str, agent: str) -> None:
            async with gate:
                try:
                    await self._agent_stub(k).SignIn(
                        agent_service_pb2.SignInRequest(name=f"tenants/{tenant}/agents/{agent}"),
                        metadata=self.meta[tenant],
                    )
                except grpc.aio.AioRpcError as exc:
                    self.errors[f"sign-in {_why(exc)}"] += 1

        await asyncio.gather(*(sign_in(k, t, a) for k, (t, a) in enumerate(self.agents)))

    async def _listen(self, k: int, tenant: str, call: Any) -> None:
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
                self._spawn(self._handle(k, tenant, offer.name, offer.token), self._handling)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                self.errors[f"stream {_why(exc)}"] += 1
        except asyncio.CancelledError:
            pass

    async def _handle(self, k: int, tenant: str, name: str, token: int) -> None:
        """The desktop accepts and completes at once, so the agent's slot frees."""
        stub, meta = self._agent_stub(k), self.meta[tenant]
        try:
            await stub.AcceptOffer(
                agent_service_pb2.AcceptOfferRequest(name=name, token=token), metadata=meta
            )
            await stub.CompleteContact(
                agent_service_pb2.CompleteContactRequest(
                    name=name, token=token, outcome=resources_pb2.OUTCOME_RESOLVED
                ),
                metadata=meta,
            )
            self.completed += 1
        except grpc.aio.AioRpcError as exc:
            self.errors[f"accept/complete {_why(exc)}"] += 1

    def _spawn(self, coro: Any, into: set[asyncio.Task[None]]) -> None:
        task = asyncio.create_task(coro)
        into.add(task)
        task.add_done_callback(into.discard)

    async def close(self) -> None:
        """Cancel the streams, close the channels."""
        for call in self._streams:
            call.cancel()
        await asyncio.sleep(0.2)
        for channel in (*self.platform, *itertools.chain.from_iterable(self.agent_channels)):
            await channel.close(grace=None)

    def _request(self, tenant: str, seq: int) -> contact_service_pb2.SubmitContactRequest:
        rng = self.rng
        channel = rng.choices([c for c, _ in CHANNEL_MIX], [w for _, w in CHANNEL_MIX])[0]
        customer = rng.randrange(self.plan.customers)
        return contact_service_pb2.SubmitContactRequest(
            parent=f"tenants/{tenant}",
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

    async def _submit(self, tenant: str, seq: int, at: float) -> None:
        stub = self.contacts[next(self.turn) % len(self.contacts)]
        self.submitted[seq] = at
        try:
            await stub.SubmitContact(self._request(tenant, seq), metadata=self.meta[tenant])
        except grpc.aio.AioRpcError as exc:
            self.errors[f"submit {_why(exc)}"] += 1
            self.submitted.pop(seq, None)

    async def run(self, step: Step, seconds: float) -> None:
        """Submit on the schedule (Poisson or even) at `step.rate`, never waiting on replies."""
        rng = random.Random(self.plan.seed + int(step.rate * 1000) + int(seconds * 10))
        # Exactly rate x seconds arrivals: for Poisson, uniform times sorted (a Poisson
        # process given its count), so that a step's load is the rate it is labelled with.
        count = max(1, round(step.rate * seconds))
        if self.plan.arrivals == "poisson":
            offsets = sorted(rng.uniform(0, seconds) for _ in range(count))
        else:
            offsets = [i / step.rate for i in range(count)]
        step.t0 = time.perf_counter() + 0.02
        step.t1 = step.t0 + seconds
        pending: list[asyncio.Task[None]] = []
        for offset in offsets:
            at = step.t0 + offset
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            seq = next(self.seq)
            step.seqs.append(seq)
            tenant = self.tenants[rng.randrange(len(self.tenants))]
            pending.append(asyncio.create_task(self._submit(tenant, seq, at)))
        await asyncio.sleep(max(0.0, step.t1 - time.perf_counter()))
        await asyncio.gather(*pending)

    async def drain(self, step: Step, timeout_s: float = DRAIN_S) -> int:
        """Until every contact of the step was offered and every desktop done; returns the
        contacts never offered."""
        deadline = time.perf_counter() + timeout_s

        def missing() -> int:
            return sum(1 for s in step.seqs if s in self.submitted and s not in self.offered)

        while missing() and time.perf_counter() < deadline:
            self.offer_arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.offer_arrived.wait(), timeout=0.5)
        while self._handling and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        return missing()

    def figures(self, step: Step) -> dict[str, Any]:
        """The step's rate and latencies."""
        lat = [self.offered[s] - self.submitted[s] for s in step.seqs if s in self.offered]
        server = [self.server_ms[s] for s in step.seqs if s in self.server_ms]
        # Offers of the step over the time from its start to its last offer (the step's
        # length at least): the arrival rate when the replicas keep up, less when they lag.
        last = max((self.offered[s] for s in step.seqs if s in self.offered), default=step.t1)
        span = max(step.t1, last) - step.t0
        return {
            "rate": step.rate,
            "lag_s": round(max(0.0, last - step.t1), 2),
            "arrivals": len(step.seqs),
            "offered": len(lat),
            "decisions_per_s": round(len(lat) / span, 1),
            "p50_ms": _ms(lat, 0.50),
            "p99_ms": _ms(lat, 0.99),
            "max_ms": _ms(lat, 1.0),
            "server_p50_ms": round(percentile(server, 0.50), 1),
            "server_p99_ms": round(percentile(server, 0.99), 1),
        }


def _why(exc: grpc.aio.AioRpcError) -> str:
    return f"{exc.code().name}: {(exc.details() or '')[:60]}"


def _ms(seconds: Sequence[float], q: float) -> float:
    return round(percentile(seconds, q) * 1000, 2)


async def measured_step(
    floor: Desks, store: Store, replicas: Replicas, cpu: CpuMeter, rate: float, seconds: float
) -> dict[str, Any]:
    """One step at `rate` with every figure: latency, decisions, scripts, CPU."""
    store.reset_stats()
    before = await asyncio.to_thread(replicas.scrape)
    step = Step(rate)
    cpu.start()
    await floor.run(step, seconds)
    shares = cpu.stop()
    unoffered = await floor.drain(step)
    after = await asyncio.to_thread(replicas.scrape)
    routed, lost = decisions(before, after)
    figures = floor.figures(step)
    figures.update(
        unoffered=unoffered,
        kept_up=unoffered == 0 and figures["lag_s"] <= max(1.0, MAX_LAG * seconds),
        routed=routed,
        lost_races=lost,
        lost_per_routed=round(lost / routed, 2) if routed else math.nan,
        scripts_redis=store.script_stats(),
        slow_commands=store.slow_scripts(),
        scripts_replica_p99_ms=script_p99_bound(before, after),
        reserve_replica_p99_ms=script_p99_bound(before, after, "reserve_offer"),
        cpu=_cpu_groups(shares),
    )
    return figures


def _cpu_groups(shares: dict[str, float]) -> dict[str, float]:
    groups: dict[str, float] = collections.defaultdict(float)
    for name, value in shares.items():
        groups[name.rstrip("0123456789")] += value
    return {k: round(v) for k, v in groups.items()}


def _meter(replicas: Replicas, store: Store) -> CpuMeter:
    pids = {f"replicas{i}": p.pid for i, p in enumerate(replicas.procs)}
    pids.update({f"redis{i}": pid for i, pid in enumerate(store.pids)})
    pids["client"] = os.getpid()
    return CpuMeter(pids)


# --- the scale matrix ---------------------------------------------------------------------


async def run_config(
    store: Store, count: int, tenants: list[str], plan: Plan, folder: Path, say: Any
) -> dict[str, Any]:
    """`count` replicas on `store`: seed, start, open streams, warm up, step the rates."""
    store.flush()
    started = time.perf_counter()
    secrets = await seed_tenants(store.url, tenants, plan.agents, plan)
    seeded = time.perf_counter()
    replicas = Replicas(store.url, count, folder, plan.server_env)
    replicas.start()
    steps: list[dict[str, Any]] = []
    try:
        await replicas.wait_serving()
        serving = time.perf_counter()
        floor = Desks(replicas.targets, secrets, plan.agents, plan)
        try:
            await floor.open_streams()
            say(
                f"  seeded in {seeded - started:.1f} s, serving after {serving - seeded:.1f} s, "
                f"{len(floor.agents)} agents signed in after {time.perf_counter() - serving:.1f} s"
            )
            warm = Step(plan.rates[0])
            await floor.run(warm, plan.warmup_s)
            await floor.drain(warm)
            cpu = _meter(replicas, store)
            for rate in plan.rates:
                figures = await measured_step(floor, store, replicas, cpu, rate, plan.step_s)
                steps.append(figures)
                say(
                    f"  {count} x {store.name} @ {rate:g}/s: {figures['decisions_per_s']}/s, "
                    f"p50 {figures['p50_ms']} p99 {figures['p99_ms']} ms, scripts p99 "
                    f"{figures['scripts_redis']['p99_us']} us, lost/routed "
                    f"{figures['lost_per_routed']}, cpu {figures['cpu']}"
                )
                if not figures["kept_up"]:
                    break
            errors = dict(floor.errors)
        finally:
            await floor.close()
    except BaseException:
        sys.stderr.write(replicas.tail())
        raise
    finally:
        replicas.stop()
    return {
        "replicas": count,
        "shards": store.shards,
        "store": store.name,
        "steps": steps,
        "errors": errors,
        "seconds": round(time.perf_counter() - started, 1),
    }


# --- capacity and memory ------------------------------------------------------------------


def memory_of(node: redis.Redis, names: Sequence[str]) -> int:
    """MEMORY USAGE (every element counted) summed over keys; missing keys count 0."""
    pipe = node.pipeline(transaction=False)
    for name in names:
        pipe.execute_command("MEMORY USAGE", name, "SAMPLES", "0")  # type: ignore[no-untyped-call]
    return sum(int(v or 0) for v in pipe.execute())


def measure_memory(node: redis.Redis, tenant: str, agents: int, waiting: int) -> dict[str, Any]:
    """Bytes per agent and per waiting contact from MEMORY USAGE of the keys each uses, plus
    its share of the index keys it is a member of; and per customer."""
    t = f"omr:{{{tenant}}}"
    sample = random.Random(1)
    picked = sample.sample(range(agents), min(agents, 200))
    own = memory_of(
        node,
        [
            f"{t}:agent:{agent_id(n)}{suffix}"
            for n in picked
            for suffix in ("", ":load", ":contacts")
        ],
    )
    index = {name: memory_of(node, [f"{t}:{name}"]) for name in ("agents", "available", "presence")}
    agent: dict[str, Any] = {
        "own_keys": round(own / len(picked)),
        "index_share": round(sum(index.values()) / agents),
        "indexes": "agents set, available set, presence zset",
    }
    agent["total"] = agent["own_keys"] + agent["index_share"]
    contact: dict[str, Any] = {}
    if waiting:
        picked = sample.sample(range(waiting), min(waiting, 200))
        own = memory_of(node, [f"{t}:contact:bk{i:06d}" for i in picked])
        queue = memory_of(node, [f"{t}:queue"])
        view = memory_of(node, [f"{t}:view:{BACKLOG_ISSUE}:{Channel.EMAIL.value}"])
        queued = int(node.zcard(f"{t}:queue"))
        contact = {
            "own_keys": round(own / len(picked)),
            "index_share": round(queue / max(queued, 1) + view / waiting),
            "indexes": "queue zset, issue:channel view zset",
        }
        contact["total"] = contact["own_keys"] + contact["index_share"]
    customers = [k for k in itertools.islice(node.scan_iter(f"{t}:customer:*", count=500), 2000)
                 if not k.endswith(":history")][:100]  # fmt: skip
    customer: dict[str, Any] = {}
    if customers:
        ids = memory_of(node, [k for k in node.scan_iter(f"{t}:identity:*", count=500)])
        n_ids = sum(1 for _ in node.scan_iter(f"{t}:identity:*", count=500))
        own = memory_of(node, customers) + memory_of(node, [f"{k}:history" for k in customers])
        customer = {
            "hash_and_history": round(own / len(customers)),
            "identity": round(ids / max(n_ids, 1)),
        }
        customer["total"] = customer["hash_and_history"] + customer["identity"]
    return {"agent": agent, "contact": contact, "customer": customer}


async def capacity_point(
    store: Store, agents: int, waiting: int, plan: Plan, folder: Path, say: Any
) -> dict[str, Any]:
    """One tenant with `agents` agents (streams open, signed in) and `waiting` waiting
    contacts on one replica; a fixed-rate step; latency, scripts and memory."""
    store.flush()
    node = store.primaries[0]
    started = time.perf_counter()
    base = store.used_memory()
    secrets = await seed_tenants(store.url, [CAPACITY_TENANT], agents, plan)
    after_agents = store.used_memory()
    seeded_s = await seed_backlog(store.url, CAPACITY_TENANT, waiting, plan.backlog_target_s)
    after_backlog = store.used_memory()
    replicas = Replicas(store.url, 1, folder, plan.server_env)
    replicas.start()
    try:
        await replicas.wait_serving()
        serving = time.perf_counter()
        floor = Desks(replicas.targets, secrets, agents, plan)
        try:
            await floor.open_streams()
            say(
                f"  seeded {agents} agents and {waiting} waiting in {serving - started:.1f} s "
                f"(with the replica's start), signed in after {time.perf_counter() - serving:.1f} s"
            )
            warm = Step(plan.capacity_rate)
            await floor.run(warm, plan.warmup_s)
            await floor.drain(warm)
            cpu = _meter(replicas, store)
            rounds = [
                await measured_step(
                    floor, store, replicas, cpu, plan.capacity_rate, plan.capacity_s
                )
                for _ in range(plan.capacity_rounds)
            ]
            # A busy machine only adds latency: the point's figures are its best round's
            # (lowest p99 of those that kept up); every round is kept in the JSON.
            figures = min(rounds, key=lambda r: (not r["kept_up"], r["p99_ms"]))
            figures["rounds"] = [
                {k: r[k] for k in ("p50_ms", "p99_ms", "server_p99_ms", "kept_up", "cpu")}
                | {"script_p99_us": r["scripts_redis"]["p99_us"]}
                for r in rounds
            ]
            rss = replicas.rss_mb()
            figures["errors"] = dict(floor.errors)
        finally:
            await floor.close()
    except BaseException:
        sys.stderr.write(replicas.tail())
        raise
    finally:
        replicas.stop()
    memory = measure_memory(node, CAPACITY_TENANT, agents, waiting)
    figures["core_cpu"] = decision_cost(agents, waiting, plan)
    memory["used_memory_per_agent"] = round((after_agents - base) / agents)
    memory["used_memory_per_contact"] = round((after_backlog - after_agents) / max(waiting, 1))
    figures.update(
        agents=agents,
        waiting=waiting,
        waiting_seed_s=round(seeded_s, 1),
        replica_rss_mb=rss,
        used_memory_mb=round(store.used_memory() / 2**20, 1),
        memory=memory,
        passed=_passes(figures, "p99_ms"),
        passed_server_clock=_passes(figures, "server_p99_ms"),
        seconds=round(time.perf_counter() - started, 1),
    )
    say(
        f"  capacity {agents} agents, {waiting} waiting @ {plan.capacity_rate:g}/s: p99 "
        f"{figures['p99_ms']} ms (server {figures['server_p99_ms']}), scripts p99 "
        f"{figures['scripts_redis']['p99_us']} us -> {'pass' if figures['passed'] else 'FAIL'}"
    )
    return figures


def _passes(figures: dict[str, Any], latency: str) -> bool:
    return bool(
        figures["kept_up"]
        and figures[latency] <= P99_TARGET_MS
        and figures["scripts_redis"]["p99_us"] <= SCRIPT_TARGET_US
    )


async def run_capacity(store: Store, plan: Plan, folder: Path, say: Any) -> dict[str, Any]:
    """Agents grow (waiting at its smallest), then waiting grows (agents at the step nearest
    1,000); every point of both ladders runs (a noisy machine can fail one point and pass
    the next). Then the largest passing of each, together."""
    points: list[dict[str, Any]] = []
    done: dict[tuple[int, int], dict[str, Any]] = {}

    async def point(a: int, w: int) -> dict[str, Any]:
        if (a, w) not in done:
            done[(a, w)] = await capacity_point(store, a, w, plan, folder / f"cap-{a}-{w}", say)
            points.append(done[(a, w)])
        return done[(a, w)]

    w0 = plan.capacity_waiting[0]
    a0 = min(plan.capacity_agents, key=lambda a: abs(a - 1000))
    by_agents = [await point(a, w0) for a in plan.capacity_agents]
    by_waiting = [await point(a0, w) for w in plan.capacity_waiting]
    result: dict[str, Any] = {"rate": plan.capacity_rate, "at_waiting": w0, "at_agents": a0}
    for clock, key in (("client", "passed"), ("server", "passed_server_clock")):
        agents = max((p["agents"] for p in by_agents if p[key]), default=0)
        waiting = max((p["waiting"] for p in by_waiting if p[key]), default=0)
        result[clock] = {"largest_agents": agents, "largest_waiting": waiting, "joint": None}
    for clock, key in (("client", "passed"), ("server", "passed_server_clock")):
        agents, waiting = result[clock]["largest_agents"], result[clock]["largest_waiting"]
        if agents and waiting:
            result[clock]["joint"] = bool((await point(agents, waiting))[key])
    result["points"] = points
    return result


# --- the run ------------------------------------------------------------------------------


async def run(
    plan: Plan, stores: dict[int, Store], folder: Path, say: Any, only: str = ""
) -> dict[str, Any]:
    """The scale matrix, then the capacity search (or `only` one of them)."""
    tenants = spread_tenants(plan.tenants, stores.get(3))
    configs: list[dict[str, Any]] = []
    if only != "capacity":
        order = [(r, s) for s in plan.shards for r in plan.replicas]
        baseline = (min(plan.replicas), min(plan.shards))
        order.remove(baseline)
        order.insert(0, baseline)
        if plan.repeat_baseline and len(order) > 1:
            order.append(baseline)
        for i, (count, shards) in enumerate(order):
            say(f"config {i + 1}/{len(order)}: {count} replica(s) x {stores[shards].name}")
            result = await run_config(
                stores[shards], count, tenants, plan, folder / f"cfg{i}-{count}x{shards}", say
            )
            result["repeat"] = i > 0 and (count, shards) == baseline
            configs.append(result)
        add_ratios(configs)
    capacity: dict[str, Any] = {}
    if only != "matrix":
        say("capacity search (1 replica x 1 Redis)")
        capacity = await run_capacity(stores[1], plan, folder / "capacity", say)
    return {"tenants": tenants, "configs": configs, "capacity": capacity}


def add_ratios(configs: list[dict[str, Any]]) -> None:
    """Each step's decisions/s and p99 as ratios of the baseline's at the same rate."""
    base = {s["rate"]: s for s in configs[0]["steps"]}
    for config in configs:
        for step in config["steps"]:
            ref = base.get(step["rate"])
            if ref is None:
                continue
            step["rate_ratio"] = _ratio(step["decisions_per_s"], ref["decisions_per_s"])
            step["p99_ratio"] = _ratio(step["p99_ms"], ref["p99_ms"])


def _ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b and not math.isnan(a) and not math.isnan(b) else math.nan


def facts(plan: Plan) -> dict[str, Any]:
    """The machine and the versions."""
    info: dict[str, Any] = machine()
    info["ram_gb"] = _ram_gb()
    info["redis_server"] = redis_server_version()
    info["rich"] = _version("rich")
    info["git"] = _git()
    info["load_average"] = os.getloadavg()
    return info


def _ram_gb() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    return math.nan


def _version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def _git() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except OSError:
        return "-"
    return head.strip() + (" (uncommitted changes)" if dirty.strip() else "")


# --- the report ---------------------------------------------------------------------------


TWO_CORES = (
    "On {cpus} CPU(s) the routers, every Redis process and this load generator share the "
    "same cores, so adding replicas or shards adds processes competing for them, not "
    "capacity: these figures cannot show scale-out (more decisions/s from more replicas or "
    "shards). They do show that every configuration routes correctly (no contact lost, lost "
    "races and their cost), the overhead of the cluster path and of several replicas racing "
    "for the same tenant, per-tenant capacity at a fixed rate, and memory per agent and per "
    "waiting contact."
)


def _f(value: float, digits: int = 1) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "> 1000"
    return f"{value:,.{digits}f}"


def _slow(slow: dict[str, list[int]]) -> str:
    """'scripts/other commands' over 1 ms in Redis, e.g. '12/5': plain O(1) commands that
    slow too mean Redis lost its core for a while (a busy machine), not a slow script."""
    scripts = sum(n for name, (n, _) in slow.items() if name in SCRIPT_NAMES)
    return f"{scripts}/{sum(n for _, (n, _) in slow.items()) - scripts}"


def _rounds(point: dict[str, Any]) -> str:
    """The kept p99, and the other rounds' in brackets."""
    others = [r["p99_ms"] for r in point.get("rounds", [])]
    with contextlib.suppress(ValueError):
        others.remove(point["p99_ms"])
    return _f(point["p99_ms"], 2) + (f" ({', '.join(_f(v, 0) for v in others)})" if others else "")


def report(result: dict[str, Any], plan: Plan, console: Console) -> None:
    """Print the machine, the tables and the conclusions."""
    info = result["machine"]
    console.print("[bold]Omniroute scale benchmark[/bold]")
    console.print(
        f"machine: {info['cpus']} CPUs ({info['cpus_usable']} usable), {info['cpu_model']}, "
        f"{info['ram_gb']} GB RAM, kernel {info['kernel']}, load average at start "
        f"{', '.join(f'{x:.1f}' for x in info['load_average'])}"
    )
    console.print(
        f"versions: Python {info['python']}, redis-server {info['redis_server']}, grpcio "
        f"{info['grpcio']}, protobuf {info['protobuf']}, redis-py {info['redis_py']}; "
        f"omniroute {info['git']}"
    )
    console.print(
        f"load: {plan.tenants} tenants {', '.join(result['tenants'])} (hash tag each; on the "
        f"cluster one per primary in turn), {plan.agents} agents each ({plan.skills} skills, "
        f"3-6 per agent; voice 1, chat 3, e-mail 2 for a third), every agent with its own "
        f"offer stream accepting and completing every offer at once; {plan.arrivals} "
        f"arrivals at a fixed total rate, {plan.step_s:g} s per step, round-robin over "
        f"the replicas; replica settings: "
        f"{' '.join('='.join(kv) for kv in plan.server_env) or 'defaults'} (--grace 1)"
    )
    if result["configs"]:
        report_matrix(result["configs"], console)
    if result["capacity"]:
        report_capacity(result["capacity"], console)
    console.print(f"\n[bold]What {info['cpus']} cores can and cannot show.[/bold] "
                  + TWO_CORES.format(cpus=info["cpus"]))  # fmt: skip


def report_matrix(configs: list[dict[str, Any]], console: Console) -> None:
    """The scale matrix's table."""
    table = Table(title="Scale matrix: decisions/s and submit->offer (ratios against the "
                  "first row at the same rate)")  # fmt: skip
    for name, justify in (
        ("replicas x Redis", "left"), ("rate /s", "right"), ("decisions /s", "right"),
        ("p50 ms", "right"), ("p99 ms", "right"), ("server p99", "right"),
        ("x base rate", "right"), ("x base p99", "right"), ("lost /routed", "right"),
        ("script p50/p99 us", "right"), ("replica script p99", "right"),
        ("CPU % rep/redis/client/others", "right"), ("left", "right"), (">1 ms s/o", "right"),
    ):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for config in configs:
        label = f"{config['replicas']} x {config['store']}" + (
            " (again)" if config.get("repeat") else ""
        )
        for s in config["steps"]:
            cpu = s["cpu"]
            table.add_row(
                label, f"{s['rate']:g}", _f(s["decisions_per_s"]), _f(s["p50_ms"], 2),
                _f(s["p99_ms"], 2), _f(s["server_p99_ms"]), _f(s.get("rate_ratio", math.nan), 2),
                _f(s.get("p99_ratio", math.nan), 2), _f(s["lost_per_routed"], 2),
                f"{_f(s['scripts_redis']['p50_us'], 0)}/{_f(s['scripts_redis']['p99_us'], 0)}",
                _f(s["scripts_replica_p99_ms"], 1),
                "/".join(str(cpu.get(k, 0)) for k in ("replicas", "redis", "client", "others")),
                str(s["unoffered"]), _slow(s["slow_commands"]),
            )  # fmt: skip
            label = ""
    console.print(table)
    console.print(
        "server p99: offer_time - create_time (Redis clock); lost /routed: reserve_offer "
        "refusals per routed contact, all replicas; script p50/p99: EVALSHA in Redis (worst "
        "primary); replica script p99: bucket of the replicas' script round trips (ms); left: "
        "never offered; >1 ms s/o: SLOWLOG scripts/other commands"
    )
    errors = {f"{c['replicas']}x{c['shards']}": c["errors"] for c in configs
              if c["errors"]}  # fmt: skip
    console.print(f"errors: {errors or 'none'}")


def report_capacity(cap: dict[str, Any], console: Console) -> None:
    """The capacity search's table, its conclusion and the memory figures."""
    table = Table(
        title=f"Capacity per tenant: 1 replica x 1 Redis, contacts at {cap['rate']:g}/s; "
        f"pass = p99 <= {P99_TARGET_MS:g} ms and Redis script p99 <= "
        f"{SCRIPT_TARGET_US / 1000:g} ms"
    )
    for name in ("agents", "waiting", "p50 ms", "p99 ms (rounds)", "server p99",
                 "script p99 us", ">1 ms s/o", "others %", "core ms d/h/e", "RSS MB",
                 "Redis MB", "B/agent", "B/contact", "pass c/s"):  # fmt: skip
        table.add_column(name, justify="right")
    for p in cap["points"]:
        mem, core = p["memory"], p["core_cpu"]
        table.add_row(
            f"{p['agents']:,}", f"{p['waiting']:,}", _f(p["p50_ms"], 1), _rounds(p),
            _f(p["server_p99_ms"], 0), _f(p["scripts_redis"]["p99_us"], 0),
            _slow(p["slow_commands"]), str(p["cpu"].get("others", 0)),
            "/".join(_f(core[k], 2) for k in ("decide_ms", "decide_with_head_ms",
                                              "explanation_ms")),
            _f(p["replica_rss_mb"], 0), _f(p["used_memory_mb"]),
            f"{mem['agent']['total']:,}", f"{mem['contact'].get('total', 0):,}",
            f"{'yes' if p['passed'] else 'no'}/{'yes' if p['passed_server_clock'] else 'no'}",
        )  # fmt: skip
    console.print(table)
    console.print(
        "p99 (rounds): the kept round's, the others' in brackets; server p99: offer_time - "
        "create_time; script p99: EVALSHA in Redis; >1 ms s/o: SLOWLOG scripts/other commands; "
        "others %: CPU of the rest of the machine; core ms d/h/e: decide one contact / with "
        "the backlog's share of the queue head / one explanation, timed in this process; "
        "pass c/s: on the client's / the server's clock"
    )
    for clock, what in (
        ("client", "p99 on this client's clock"),
        ("server", "p99 on the server's clock (offer_time - create_time)"),
    ):
        c = cap[clock]
        joint = "-" if c["joint"] is None else "pass" if c["joint"] else "FAIL"
        console.print(
            f"largest passing, {what}: {c['largest_agents']:,} agents (with "
            f"{cap['at_waiting']:,} waiting); {c['largest_waiting']:,} waiting contacts (with "
            f"{cap['at_agents']:,} agents); both together: {joint} (0: no point of that ladder "
            "passed)"
        )
    if cap["points"]:
        most_agents = max(cap["points"], key=lambda p: (p["agents"], -p["waiting"]))
        most_waiting = max(cap["points"], key=lambda p: (p["waiting"], -p["agents"]))
        a, cu = most_agents["memory"]["agent"], most_agents["memory"]["customer"]
        c = most_waiting["memory"]["contact"]
        console.print(
            f"memory (MEMORY USAGE ... SAMPLES 0) with {most_agents['agents']:,} agents: per "
            f"agent {a['total']:,} B = its hash, load and contacts hashes {a['own_keys']:,} B + "
            f"its share of the {a['indexes']} {a['index_share']:,} B (used_memory grew "
            f"{most_agents['memory']['used_memory_per_agent']:,} B per created agent, with its "
            "audit record)"
        )
        if c:
            console.print(
                f"  with {most_waiting['waiting']:,} waiting: per waiting contact "
                f"{c['total']:,} B = its hash {c['own_keys']:,} B + its share of the "
                f"{c['indexes']} {c['index_share']:,} B (used_memory grew "
                f"{most_waiting['memory']['used_memory_per_contact']:,} B per queued contact)"
            )
        if cu:
            console.print(
                f"  per customer (once, shared by its contacts) {cu['total']:,} B = hash and "
                f"history {cu['hash_and_history']:,} B + identity key {cu['identity']:,} B; "
                "a SubmitContact with a request_id adds an idempotency key for 24 h"
            )


# --- main ---------------------------------------------------------------------------------


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the tables (or JSON)."""
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short run (about 3 minutes)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--replicas", type=_ints, help="router replica counts, e.g. 1,2,4")
    p.add_argument("--shards", type=_ints, help="Redis shard counts: 1 and/or 3")
    p.add_argument("--tenants", type=int, help="tenants in the scale matrix (default 3)")
    p.add_argument("--agents", type=int, help="agents per tenant in the scale matrix")
    p.add_argument("--skills", type=int, help="skills (and rules) per tenant (default 20)")
    p.add_argument("--rates", type=_floats, help="arrival rates, contacts/s, e.g. 50,100")
    p.add_argument("--step", type=float, dest="step_s", help="seconds per rate step")
    p.add_argument("--warmup", type=float, dest="warmup_s", help="warm-up seconds per config")
    p.add_argument("--arrivals", choices=("poisson", "even"), help="arrival schedule")
    p.add_argument("--cluster-replicas", type=int, help="replicas per cluster primary (0)")
    p.add_argument("--capacity-agents", type=_ints, help="agent ladder, e.g. 100,1000")
    p.add_argument("--capacity-waiting", type=_ints, help="waiting ladder, e.g. 1000,10000")
    p.add_argument("--capacity-rate", type=float, help="contacts/s during capacity points")
    p.add_argument("--capacity-seconds", type=float, dest="capacity_s")
    p.add_argument("--capacity-rounds", type=int, help="rounds per capacity point (best kept)")
    p.add_argument("--backlog-target", type=float, dest="backlog_target_s",
                   help="answer target of the waiting backlog, s (default a week)")  # fmt: skip
    p.add_argument("--no-repeat-baseline", action="store_true")
    p.add_argument("--only", choices=("matrix", "capacity"), default="",
                   help="run only the scale matrix or only the capacity search")  # fmt: skip
    p.add_argument("--server-env", action="append", default=[], metavar="OMNIROUTE_X=V",
                   help="a setting for every replica (experiments)")  # fmt: skip
    p.add_argument("--json-out", type=Path, metavar="FILE", help="also write the JSON to FILE")
    ns = p.parse_args(argv)
    plan = Plan.quick() if ns.quick else Plan()
    names = ("replicas", "shards", "tenants", "agents", "skills", "rates", "step_s", "warmup_s",
             "arrivals", "cluster_replicas", "capacity_agents", "capacity_waiting",
             "capacity_rate", "capacity_s", "capacity_rounds", "backlog_target_s")  # fmt: skip
    plan = replace(plan, **{n: getattr(ns, n) for n in names if getattr(ns, n) is not None})
    if ns.no_repeat_baseline:
        plan = replace(plan, repeat_baseline=False)
    env = tuple(tuple(item.split("=", 1)) for item in ns.server_env)
    if any(len(kv) != 2 or not kv[0].startswith("OMNIROUTE_") for kv in env):
        p.error("--server-env takes OMNIROUTE_NAME=VALUE")
    plan = replace(plan, server_env=env)
    if not set(plan.shards) <= {1, 3}:
        p.error("--shards takes 1 and/or 3")
    if 1 not in plan.shards:
        p.error("--shards must include 1: the capacity search runs on one Redis")
    logs.configure(json=False, level="warning")
    # SIGTERM unwinds like Ctrl-C, so the replicas and the Redis nodes are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    console = Console(stderr=ns.json, highlight=False, width=200)

    def say(line: str) -> None:
        console.print(line, style="dim", markup=False)

    info = facts(plan)
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="omr-bench-scale-") as tmp,
        contextlib.ExitStack() as st,
    ):
        folder = Path(tmp)
        stores = {1: st.enter_context(single_redis(folder / "redis"))}
        if 3 in plan.shards and ns.only != "capacity":
            stores[3] = st.enter_context(cluster_redis(folder / "cluster", plan.cluster_replicas))
        result = asyncio.run(run(plan, stores, folder, say, ns.only))
    info["wall_s"] = round(time.perf_counter() - started, 1)
    result = {"machine": info, "plan": asdict(plan), **result}
    if ns.json_out:
        ns.json_out.write_text(json.dumps(result, indent=2, default=str))
    if ns.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        report(result, plan, console)
        console.print(f"\n(wall time {info['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
