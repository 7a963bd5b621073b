"""Benchmark of the supervisor web view (figures, not a test).

1. Latency: time from a gRPC state change (SetAgentState) to the change applied in a real
   page (Debian's chromium through Playwright; the page stamps ``data-applied-at`` when it
   applies a snapshot), p50/p95 over ``--changes`` changes.
2. Cost: the routing rate (contacts offered per second, from the first submit until the
   queue is empty) with ``--pages`` open page streams beside none, alternating in one run.
   The streams are server-sent-event connections of signed-in sessions, read by a client
   process, so the figure is the service's cost, not the browsers' rendering.

Starts its own embedded Redis and ``omniroute serve --web-port`` as a subprocess.
Usage: .venv/bin/python benchmarks/bench_web.py [--changes 30] [--pages 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from queues.embedded import EmbeddedRedis  # noqa: E402
from router.auth import Role  # noqa: E402
from router.pb.omniroute.v1 import agent_service_pb2 as agent_pb  # noqa: E402
from router.pb.omniroute.v1 import agent_service_pb2_grpc as agent_grpc  # noqa: E402
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb  # noqa: E402
from router.pb.omniroute.v1 import contact_service_pb2_grpc as contact_grpc  # noqa: E402
from router.pb.omniroute.v1 import resources_pb2 as pb  # noqa: E402
from router.pb.omniroute.v1 import supervisor_service_pb2 as sup_pb  # noqa: E402
from router.pb.omniroute.v1 import supervisor_service_pb2_grpc as sup_grpc  # noqa: E402

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AGENTS = 40
CHAT_SLOTS = 10


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def make_keys(url: str) -> dict[str, str]:
    """A supervisor, platform and admin key of tenant ``bench``."""
    from queues.state import RedisState
    from router.domain import TenantId
    from router.server import redis_client
    from router.supervision import Supervision

    client = redis_client(url)
    sup = Supervision(RedisState(client))
    keys = {}
    for role in (Role.SUPERVISOR, Role.PLATFORM, Role.ADMIN):
        keys[role.value] = (await sup.create_api_key(TenantId("bench"), role, "", "b", "b"))[1]
    await client.aclose()
    return keys


class Bench:
    """The service subprocess and gRPC stubs."""

    def __init__(self, redis_url: str, data: Path, keys: dict[str, str]) -> None:
        self.keys = keys
        self.web = f"http://127.0.0.1:{free_port()}"
        grpc_port = free_port()
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "OMNIROUTE_LOG_LEVEL": "warning",
            "OMNIROUTE_PRESENCE_TIMEOUT_S": "3600",
            "OMNIROUTE_OFFER_TIMEOUT_S": "600",
        }
        with (data / "service.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import sys; from router.cli import main; sys.exit(main())",
                    "serve",
                    "--port",
                    str(grpc_port),
                    "--web-port",
                    self.web.rsplit(":", 1)[1],
                    "--data-dir",
                    str(data),
                ],
                env=env,
                stdout=log,
                stderr=log,
            )
        self.channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.contacts = contact_grpc.ContactServiceStub(self.channel)
        self.agents = agent_grpc.AgentServiceStub(self.channel)
        self.sup = sup_grpc.SupervisorServiceStub(self.channel)

    def md(self, role: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.keys[role]}"),)

    def seed(self) -> None:
        self.sup.CreateRoutingSkill(
            sup_pb.CreateRoutingSkillRequest(parent="tenants/bench", routing_skill_id="bench"),
            metadata=self.md("supervisor"),
        )
        rule = pb.RoutingRule(
            required_skills=[pb.SkillRequirement(skill="bench", min_proficiency=1)]
        )
        self.sup.CreateRoutingRule(
            sup_pb.CreateRoutingRuleRequest(
                parent="tenants/bench", issue="bench", routing_rule=rule
            ),
            metadata=self.md("supervisor"),
        )
        for i in range(AGENTS):
            agent = pb.Agent(
                display_name=f"Agent {i:02d}",
                skills=[pb.Skill(skill="bench", proficiency=1 + i % 5)],
                capacities=[pb.ChannelCapacity(channel=pb.CHANNEL_CHAT, max_contacts=CHAT_SLOTS)],
            )
            self.sup.CreateAgent(
                sup_pb.CreateAgentRequest(
                    parent="tenants/bench", agent_id=f"a{i:02d}", agent=agent
                ),
                metadata=self.md("supervisor"),
            )
            self.agents.SignIn(
                agent_pb.SignInRequest(name=f"tenants/bench/agents/a{i:02d}"),
                metadata=self.md("admin"),
            )

    def set_state(self, agent: str, state: int, reason: str = "") -> None:
        self.agents.SetAgentState(
            agent_pb.SetAgentStateRequest(
                name=f"tenants/bench/agents/{agent}", state=state, away_reason=reason
            ),
            metadata=self.md("supervisor"),
        )

    def waiting(self) -> int:
        return int(
            self.contacts.GetQueueStats(
                contact_pb.GetQueueStatsRequest(parent="tenants/bench"),
                metadata=self.md("supervisor"),
            ).waiting
        )

    def routing_round(self, n: int) -> float:
        """Contacts offered per second: n submitted by 8 threads until the queue is empty."""

        def submit(_: int) -> str:
            return str(
                self.contacts.SubmitContact(
                    contact_pb.SubmitContactRequest(
                        parent="tenants/bench",
                        contact=pb.Contact(channel=pb.CHANNEL_CHAT, issue="bench"),
                    ),
                    metadata=self.md("platform"),
                ).name
            )

        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            names = list(pool.map(submit, range(n)))
        while self.waiting():
            time.sleep(0.005)
        rate = n / (time.perf_counter() - start)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:  # free the slots again
            list(
                pool.map(
                    lambda c: self.contacts.CancelContact(
                        contact_pb.CancelContactRequest(name=c), metadata=self.md("platform")
                    ),
                    names,
                )
            )
        return rate

    def stop(self) -> None:
        self.channel.close()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def latency(bench: Bench, changes: int) -> list[float]:
    """Milliseconds from SetAgentState to the page applying it."""
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"{bench.web}/login")
        page.fill("#api_key", bench.keys["supervisor"])
        page.click("button[type=submit]")
        page.wait_for_selector('#conn[data-state="live"]')
        for i in range(changes):
            agent, reason = f"a{i % AGENTS:02d}", f"bench_{i}"
            t0 = time.time() * 1000
            bench.set_state(agent, pb.AGENT_STATE_AWAY, reason)
            page.wait_for_selector(f'tr.agent[data-agent="{agent}"]:has-text("{reason}")')
            results.append(float(page.get_attribute("body", "data-applied-at") or 0) - t0)
            bench.set_state(agent, pb.AGENT_STATE_AVAILABLE)
            time.sleep(0.3)  # spaced changes: each is measured on its own
        browser.close()
    return results


class Viewers:
    """`n` signed-in event streams, read by a separate process (so that reading them does
    not compete with the submitting threads for this process's GIL)."""

    def __init__(self, bench: Bench, n: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--viewers", str(n), bench.web, bench.keys["supervisor"]],
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        self.process.stdout.readline()  # "ready": every stream has its first snapshot

    def close(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=10)


async def read_streams(n: int, web: str, key: str) -> None:
    """Open `n` sessions and read their streams until killed."""
    ready = asyncio.Semaphore(0)

    async def one() -> None:
        async with httpx.AsyncClient(base_url=web, timeout=None) as client:
            await client.post("/login", data={"api_key": key}, headers={"origin": web})
            async with client.stream("GET", "/events") as stream:
                first = True
                async for chunk in stream.aiter_raw():
                    if first and b"event: snapshot" in chunk:
                        first = False
                        ready.release()

    tasks = [asyncio.create_task(one()) for _ in range(n)]
    for _ in range(n):
        await ready.acquire()
    print("ready", flush=True)
    await asyncio.gather(*tasks)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=30)
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--contacts", type=int, default=400)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--viewers", type=int, help=argparse.SUPPRESS)
    ns, rest = ap.parse_known_args()
    if ns.viewers:
        asyncio.run(read_streams(ns.viewers, rest[0], rest[1]))
        return 0
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedRedis(Path(tmp) / "r", persistent=False) as redis,
    ):
        keys = asyncio.run(make_keys(redis.url))
        bench = Bench(redis.url, Path(tmp), keys)
        try:
            bench.seed()
            ms = latency(bench, ns.changes)
            bench.routing_round(ns.contacts)  # warm-up
            rates: dict[int, list[float]] = {0: [], ns.pages: []}
            for _ in range(ns.rounds):
                for pages in (0, ns.pages):
                    viewers = Viewers(bench, pages) if pages else None
                    time.sleep(1.0 if pages else 0)
                    rates[pages].append(bench.routing_round(ns.contacts))
                    if viewers:
                        viewers.close()
        finally:
            bench.stop()
    none, some = statistics.median(rates[0]), statistics.median(rates[ns.pages])
    figures = {
        "latency_ms_p50": round(percentile(ms, 0.50), 1),
        "latency_ms_p95": round(percentile(ms, 0.95), 1),
        "latency_ms_max": round(max(ms), 1),
        "changes": len(ms),
        "routing_per_s_no_pages": round(none, 1),
        f"routing_per_s_{ns.pages}_pages": round(some, 1),
        "routing_change_pct": round((some / none - 1) * 100, 1),
        "rounds": ns.rounds,
        "contacts_per_round": ns.contacts,
    }
    if ns.json:
        print(json.dumps(figures))
        return 0
    print(
        f"web view latency, gRPC change -> page ({len(ms)} changes): "
        f"p50 {figures['latency_ms_p50']} ms, p95 {figures['latency_ms_p95']} ms, "
        f"max {figures['latency_ms_max']} ms (target p95 <= 1000 ms)"
    )
    print(
        f"routing rate, median of {ns.rounds} rounds of {ns.contacts} contacts: "
        f"{none:.0f}/s with no page, {some:.0f}/s with {ns.pages} open pages "
        f"({figures['routing_change_pct']:+.1f} %; target >= -5 %)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
