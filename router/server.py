"""The gRPC server: servicers, health checking, reflection, interceptors, lifecycle.

``Service`` wires one replica (Redis client, state, engine, servicers) and is used both by
``omniroute serve`` and by the tests, which run it in-process on port 0.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from redis.asyncio import Redis

from queues.cluster import connect
from queues.embedded import EmbeddedRedis
from queues.state import RedisState
from router import tracing
from router.auth import Authenticator, Role
from router.config import Settings
from router.domain import TenantId
from router.engine import Engine
from router.ids import new_id
from router.interceptors import AuthInterceptor
from router.metrics import Metrics
from router.pb.omniroute.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    agent_service_pb2,
    agent_service_pb2_grpc,
    contact_service_pb2,
    contact_service_pb2_grpc,
    planning_service_pb2,
    planning_service_pb2_grpc,
    supervisor_service_pb2,
    supervisor_service_pb2_grpc,
)
from router.planning import Planner
from router.planning_service import PlanningService
from router.ratelimit import Limit, TenantLimiter
from router.service import AdminService, AgentService, ContactService, SupervisorService
from router.supervision import Supervision
from router.tls import ServerCredentials, ServerFiles

log = structlog.get_logger(__name__)

SERVICE_NAMES = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in (
        (contact_service_pb2, "ContactService"),
        (agent_service_pb2, "AgentService"),
        (supervisor_service_pb2, "SupervisorService"),
        (admin_service_pb2, "AdminService"),
        (planning_service_pb2, "PlanningService"),
    )
)
#: The largest request a replica reads (gRPC's default is 4 MiB): larger ones end
#: RESOURCE_EXHAUSTED before any of it is parsed. Ordinary requests are a few kB; the
#: largest are CreatePlan's attached files (a bigger contact log belongs on the server, as
#: ``log: bank``). Headers keep gRPC's limits: 8 KiB soft, 16 KiB hard.
MAX_REQUEST_BYTES = 1 << 20
#: Redis versions with the Lua fixes of CVE-2025-49844 and siblings, per release line.
_FIXED_REDIS = {
    (6, 2): (6, 2, 20),
    (7, 2): (7, 2, 11),
    (7, 4): (7, 4, 6),
    (8, 0): (8, 0, 4),
    (8, 2): (8, 2, 2),
}


def redis_client(url: str) -> Redis:
    """The asyncio Redis client every replica uses: one node, or a Redis Cluster when
    `url` is ``redis+cluster://`` (see ``queues.cluster``)."""
    return connect(
        url,
        decode_responses=True,
        socket_timeout=5.0,
        socket_connect_timeout=5.0,
        health_check_interval=10,
        max_connections=256,
    )


@dataclass
class Service:
    """One running replica: call ``start`` then ``stop``."""

    settings: Settings
    redis_url: str

    def __post_init__(self) -> None:
        self.redis = redis_client(self.redis_url)
        self.state = RedisState(
            self.redis,
            audit_maxlen=self.settings.audit_maxlen,
            idempotency_ttl_s=self.settings.idempotency_ttl_s,
            history_length=self.settings.history_length,
        )
        self.engine = Engine(self.state, self.settings)
        self.supervision = Supervision(self.state)
        self.authenticator = Authenticator(self.state)
        self.engine.key_listeners.append(self.authenticator.forget)
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self.limiter = TenantLimiter(
            Limit.of(
                self.settings.rate_limit_per_s,
                self.settings.rate_limit_burst,
                self.settings.rate_limit_wait_s,
            ),
            self.state,
            replica=self.state.replica_id,
        )
        self.engine.limit_listeners.append(self.limiter.forget)
        # Read (and checked) now, so that a bad file stops the start, naming the setting.
        files = ServerFiles.of(self.settings)
        self.tls = ServerCredentials(files) if files is not None else None
        interceptors: list[grpc.aio.ServerInterceptor] = [  # type: ignore[type-arg]
            AuthInterceptor(self.authenticator, self.state, self.limiter)
        ]
        self.metrics: Metrics | None = None
        if self.settings.metrics_port:
            self.metrics = Metrics(self.state, self.state.replica_id or new_id())
            interceptors.insert(0, self.metrics.interceptor())  # outermost: final status
        if tracing.tracer() is not None:  # first of all: its span holds the whole call
            interceptors.insert(0, tracing.TracingInterceptor())
        self.server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
                ("grpc.max_connection_age_ms", int(self.settings.max_connection_age_s * 1000)),
                (
                    "grpc.max_connection_age_grace_ms",
                    int(self.settings.max_connection_age_grace_s * 1000),
                ),
                ("grpc.keepalive_time_ms", 30_000),
            ],
        )
        contact_service_pb2_grpc.add_ContactServiceServicer_to_server(
            ContactService(self.engine), self.server
        )
        agent_service_pb2_grpc.add_AgentServiceServicer_to_server(
            AgentService(self.engine, self.supervision), self.server
        )
        supervisor_service_pb2_grpc.add_SupervisorServiceServicer_to_server(
            SupervisorService(self.engine, self.supervision), self.server
        )
        admin_service_pb2_grpc.add_AdminServiceServicer_to_server(
            AdminService(self.supervision, self.authenticator.forget), self.server
        )
        self.planner = Planner()  # plans live in this replica's memory (router/planning.py)
        planning_service_pb2_grpc.add_PlanningServiceServicer_to_server(
            PlanningService(self.planner), self.server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        self.port = 0

    async def start(self) -> int:
        """Check Redis, load scripts, start routing, then listen; returns the port."""
        await self.check_redis()
        await self.engine.start()
        if self.metrics is not None:
            port = await self.metrics.start(self.settings.host, self.settings.metrics_port)
            log.info("metrics_serving", port=port)
        address = f"{self.settings.host}:{self.settings.port}"
        if self.tls is None:
            self.port = self.server.add_insecure_port(address)
        else:
            self.port = self.server.add_secure_port(address, self.tls.credentials())
        await self.server.start()
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        tls = "off" if self.tls is None else ("mutual" if self.tls.mutual else "server")
        log.info("service_started", host=self.settings.host, port=self.port, tls=tls)
        return self.port

    async def check_redis(self) -> None:
        """Refuse an evicting Redis; warn about a Redis with known Lua CVEs."""
        info = await self.state.server_info()
        version = str(info.get("redis_version", "0.0.0"))
        policy = str(info.get("maxmemory_policy", ""))
        log.info("redis_connected", version=version, maxmemory_policy=policy)
        if policy and policy != "noeviction":
            raise SystemExit(
                f"Redis maxmemory-policy is {policy!r}: Omniroute needs 'noeviction' (an "
                "evicted key would lose a contact or an offer)"
            )
        parts = tuple(int(p) for p in version.split(".")[:3] if p.isdigit())
        fixed = _FIXED_REDIS.get((parts[0], parts[1])) if len(parts) >= 2 else None
        if fixed is None or parts < fixed:
            log.warning(
                "redis_version_has_known_lua_cves",
                version=version,
                note="CVE-2025-49844 and siblings are fixed in 6.2.20, 7.2.11, 7.4.6, 8.0.4, "
                "8.2.2 (distributions backport the fix: check your package's changelog)",
            )

    async def stop(self) -> None:
        """Say NOT_SERVING, drain RPCs for the grace period, stop routing, close Redis.
        Offers in flight stay in Redis: another replica (or this one, restarted) serves
        them or they expire back to the queue."""
        await self.health.enter_graceful_shutdown()
        await self.planner.close()  # plans end ABORTED, so their watch streams end too
        await self.server.stop(self.settings.grace_s)
        await self.limiter.close()
        if self.metrics is not None:
            await self.metrics.stop()
        await self.engine.stop()
        await self.redis.aclose()
        log.info("service_stopped")


async def ensure_dev_keys(service: Service, data_dir: Path) -> dict[str, str]:
    """Development keys for the dev tenant, one per role, kept in ``dev-keys.json``
    (mode 0600) under the data directory so restarts reuse them."""
    path = data_dir / "dev-keys.json"
    tenant = TenantId(service.settings.dev_tenant)
    keys: dict[str, str] = {}
    if path.exists():
        keys = json.loads(path.read_text())
        valid = True
        for secret in keys.values():
            try:
                await service.authenticator.authenticate(secret)
            except Exception:  # noqa: BLE001 - any failure means "make new ones"
                valid = False
        if valid and set(keys) == {r.value for r in Role}:
            return keys
    keys = {}
    for role in Role:
        _, secret = await service.supervision.create_api_key(
            tenant, role, "", f"development {role.value} key", "system"
        )
        keys[role.value] = secret
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(keys, f, indent=2)
    return keys


async def run(settings: Settings, *, announce: Any = print) -> int:
    """Serve until SIGINT or SIGTERM. With no REDIS_URL, start an embedded Redis."""
    # Handlers first: a SIGTERM that comes once the replica says SERVING (even before
    # start-up is over) must drain it, not kill it (tests/grpc/test_shutdown.py).
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    embedded: EmbeddedRedis | None = None
    url = settings.redis_url
    if not url:
        embedded = EmbeddedRedis(settings.data_dir / "redis", persistent=True)
        url = embedded.start()
    try:
        tracing.configure(settings)  # OTLP when the settings say so; else tracing stays off
        service = Service(settings, url)
        port = await service.start()
        # What start-up built lives as long as the process: keep it out of the cyclic
        # collector's sweeps, which otherwise stall the event loop for tens of ms.
        gc.collect()
        gc.freeze()
        if settings.dev_keys and embedded is not None:
            keys = await ensure_dev_keys(service, settings.data_dir)
            announce(
                f"Omniroute serving gRPC on {settings.host}:{port} (embedded Redis "
                f"{embedded.version}, data in {settings.data_dir}).\n"
                f"Development keys for tenant '{settings.dev_tenant}' are in "
                f"{settings.data_dir / 'dev-keys.json'}; admin key:\n  {keys['admin']}"
            )
        web = None
        if settings.web_port:
            from router.web.server import WebServer

            web = WebServer.beside(service)
            announce(f"Supervisor web view on http://{settings.web_host}:{await web.start()}/")
        await stop.wait()
        log.info("shutdown_requested")
        if web is not None:
            await web.stop()
        await service.stop()
    finally:
        tracing.shutdown()  # export the spans still batched
        if embedded is not None:
            embedded.stop()
    return 0
