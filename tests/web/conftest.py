"""The real service as a subprocess (``omniroute serve --web-port``) over the test Redis,
Debian's chromium driven by Playwright, a seeded floor, and gRPC stubs beside the browser.

Chromium is the system binary (``/usr/bin/chromium``, installed by ``scripts/setup.sh``);
Playwright's own browser download is never used. Without chromium the tests are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import redis

from router.auth import Role
from router.client import skills_of_rule
from router.domain import TenantId
from router.pb.omniroute.v1 import agent_service_pb2 as agent_pb
from router.pb.omniroute.v1 import agent_service_pb2_grpc as agent_grpc
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import contact_service_pb2_grpc as contact_grpc
from router.pb.omniroute.v1 import resources_pb2 as pb
from router.pb.omniroute.v1 import supervisor_service_pb2 as sup_pb
from router.pb.omniroute.v1 import supervisor_service_pb2_grpc as sup_grpc

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
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
DOCS = Path(__file__).resolve().parents[2] / "docs"
WAIT_MS = 10_000


def free_port() -> int:
    """A free loopback port (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout_s: float = 15.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy (condition waits, not sleeps)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@dataclass
class Floor:
    """The running service, its web address, keys, and gRPC stubs with helpers."""

    redis_url: str
    data_dir: Path
    grpc_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    keys: dict[tuple[str, Role], str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the web view."""
        return f"http://127.0.0.1:{self.web_port}"

    def md(self, role: Role, tenant: str = "t1") -> tuple[tuple[str, str], ...]:
        """gRPC metadata with the key of `role`."""
        return (("authorization", f"Bearer {self.keys[(tenant, role)]}"),)

    # --- process ----------------------------------------------------------------------

    def start(self) -> None:
        """Start ``omniroute serve --web-port`` and wait until both ports answer."""
        env = {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "OMNIROUTE_TICK_S": "0.2",
            "OMNIROUTE_SWEEP_S": "0.1",
            "OMNIROUTE_MIRROR_REFRESH_S": "1",
            "OMNIROUTE_GRACE_S": "0",
            "OMNIROUTE_OFFER_TIMEOUT_S": "120",
            "OMNIROUTE_PRESENCE_TIMEOUT_S": "3600",
            "OMNIROUTE_LOG_LEVEL": "warning",
        }
        command = [sys.executable, "-c", "import sys; from router.cli import main; "
                   "sys.exit(main())", "serve", "--port", str(self.grpc_port),
                   "--web-port", str(self.web_port), "--data-dir", str(self.data_dir)]  # fmt: skip
        with (self.data_dir / "service.log").open("ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log)

        def web_up() -> bool:
            assert self.process is not None and self.process.poll() is None, "service died"
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(web_up, 30, "the web view")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")
        grpc.channel_ready_future(self.channel).result(timeout=15)
        self.contacts = contact_grpc.ContactServiceStub(self.channel)
        self.agents = agent_grpc.AgentServiceStub(self.channel)
        self.sup = sup_grpc.SupervisorServiceStub(self.channel)

    def stop(self) -> None:
        """SIGTERM and wait for a clean exit."""
        if self.process is not None:
            self.channel.close()
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)
            self.process = None

    # --- gRPC helpers -----------------------------------------------------------------

    def agent(self, agent_id: str, tenant: str = "t1") -> pb.Agent:
        """GetAgent."""
        return self.sup.GetAgent(
            sup_pb.GetAgentRequest(name=f"tenants/{tenant}/agents/{agent_id}"),
            metadata=self.md(Role.SUPERVISOR, tenant),
        )

    def contact(self, name: str) -> pb.Contact:
        """GetContact."""
        return self.contacts.GetContact(
            contact_pb.GetContactRequest(name=name), metadata=self.md(Role.PLATFORM)
        )

    def set_state(self, agent_id: str, state: int, reason: str = "") -> pb.Agent:
        """SetAgentState through the API (role supervisor)."""
        return self.agents.SetAgentState(
            agent_pb.SetAgentStateRequest(
                name=f"tenants/t1/agents/{agent_id}", state=state, away_reason=reason
            ),
            metadata=self.md(Role.SUPERVISOR),
        )

    def submit(self, issue: str, channel: int, tenant: str = "t1") -> pb.Contact:
        """SubmitContact."""
        return self.contacts.SubmitContact(
            contact_pb.SubmitContactRequest(
                parent=f"tenants/{tenant}", contact=pb.Contact(channel=channel, issue=issue)
            ),
            metadata=self.md(Role.PLATFORM, tenant),
        )

    def create_agent(
        self, agent_id: str, name: str, skills: dict[str, int], caps: dict[int, int], **kw: Any
    ) -> None:
        """CreateAgent, then SignIn unless ``state=None``; ``reason`` sets it away."""
        tenant = kw.get("tenant", "t1")
        self.sup.CreateAgent(
            sup_pb.CreateAgentRequest(
                parent=f"tenants/{tenant}",
                agent_id=agent_id,
                agent=pb.Agent(
                    display_name=name,
                    skills=[pb.Skill(skill=s, proficiency=v) for s, v in skills.items()],
                    capacities=[
                        pb.ChannelCapacity(channel=c, max_contacts=n) for c, n in caps.items()
                    ],
                ),
            ),
            metadata=self.md(Role.SUPERVISOR, tenant),
        )
        state = kw.get("state", pb.AGENT_STATE_AVAILABLE)
        if state is not None:
            self.agents.SignIn(
                agent_pb.SignInRequest(
                    name=f"tenants/{tenant}/agents/{agent_id}",
                    state=state,
                    away_reason=kw.get("reason", ""),
                ),
                metadata=self.md(Role.ADMIN, tenant),
            )

    def create_rule(self, issue: str, skills: dict[str, int], tenant: str = "t1", **kw: Any):  # type: ignore[no-untyped-def]
        """CreateRoutingRule with optional relaxation steps [(after_s, {skill: level})]."""
        steps = [
            pb.RelaxationStep(
                after={"seconds": after},
                skills=[pb.SkillRequirement(skill=s, min_proficiency=v) for s, v in sk.items()],
            )
            for after, sk in kw.get("steps", [])
        ]
        rule = pb.RoutingRule(
            required_skills=[
                pb.SkillRequirement(skill=s, min_proficiency=v) for s, v in skills.items()
            ],
            relaxation_steps=steps,
            service_level=kw.get("service_level", 0.8),
        )
        for skill in skills_of_rule(rule):  # the catalogue first (agents may come later)
            with contextlib.suppress(grpc.RpcError):  # ALREADY_EXISTS: declared before
                self.sup.CreateRoutingSkill(
                    sup_pb.CreateRoutingSkillRequest(
                        parent=f"tenants/{tenant}", routing_skill_id=skill
                    ),
                    metadata=self.md(Role.SUPERVISOR, tenant),
                )
        self.sup.CreateRoutingRule(
            sup_pb.CreateRoutingRuleRequest(
                parent=f"tenants/{tenant}", issue=issue, routing_rule=rule
            ),
            metadata=self.md(Role.SUPERVISOR, tenant),
        )

    def accept_when_offered(self, name: str) -> pb.Contact:
        """Wait for the contact's offer and accept it as the platform."""
        offered = wait_until(
            lambda: (c := self.contact(name)).state == pb.CONTACT_STATE_OFFERED and c,
            what=f"an offer of {name}",
        )
        offer = f"{offered.agent}/offers/{name.rsplit('/', 1)[1]}"
        return self.agents.AcceptOffer(
            agent_pb.AcceptOfferRequest(name=offer, token=offered.offer_token),
            metadata=self.md(Role.PLATFORM),
        )

    def audit(self) -> list[pb.AuditEvent]:
        """The newest audit events of t1."""
        return list(
            self.sup.ListAuditEvents(
                sup_pb.ListAuditEventsRequest(parent="tenants/t1", page_size=50),
                metadata=self.md(Role.SUPERVISOR),
            ).audit_events
        )


async def _make_keys(url: str) -> dict[tuple[str, Role], str]:
    from queues.state import RedisState
    from router.server import redis_client
    from router.supervision import Supervision

    client = redis_client(url)
    try:
        sup = Supervision(RedisState(client))
        keys = {}
        for tenant in ("t1", "t2"):
            for role in Role:
                _, secret = await sup.create_api_key(TenantId(tenant), role, "", role.value, "test")
                keys[(tenant, role)] = secret
        return keys
    finally:
        await client.aclose()


@pytest.fixture(scope="package")
def floor(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Floor]:
    """The service with a seeded floor in tenant t1 (and one agent in t2)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/setup.sh installs it)")
    redis.Redis.from_url(redis_url).flushall()
    f = Floor(redis_url, tmp_path_factory.mktemp("web-service"))
    f.keys = asyncio.run(_make_keys(redis_url))
    f.start()
    try:
        from tests.web.seed import seed

        seed(f)
        yield f
    finally:
        f.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, through Playwright's sync API."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/setup.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def log_in(browser: Any, floor: Floor, role: Role = Role.SUPERVISOR, tenant: str = "t1") -> Any:
    """A new browser context signed in with the key of `role`; returns its floor page."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{floor.url}/login")
    page.fill("#api_key", floor.keys[(tenant, role)])
    page.click("button[type=submit]")
    page.wait_for_url("**/floor*")
    page.wait_for_selector("body[data-version]")
    return page
