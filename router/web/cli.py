"""``omniroute web``: the supervisor view as a process of its own, beside the service's
Redis (``REDIS_URL``). It hears every replica's notices through the same ``Hub`` a replica
uses and acts through the same use cases; it never routes (its routers never start), so
it adds no routing load and may run anywhere Redis is reachable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence

import structlog

from queues.state import RedisState
from router import logs
from router.auth import Authenticator
from router.config import Settings
from router.dispatch import TenantRouter
from router.domain import TenantId
from router.engine import Engine
from router.errors import InvalidArgument
from router.supervision import Supervision
from router.web.server import WebServer

log = structlog.get_logger(__name__)

DEFAULT_PORT = 8080


class ViewEngine(Engine):
    """An engine whose per-tenant routers are never started: use cases run here, routing
    stays with the service's replicas (which hear this process's changes through Redis)."""

    def router(self, tenant: TenantId) -> TenantRouter:
        """This process's idle router of `tenant` (notices mark it, nothing routes)."""
        router = self.routers.get(tenant)
        if router is None:
            router = TenantRouter(tenant, self.state, self.settings, self.clock)
            self.routers[tenant] = router
        return router


def parser() -> argparse.ArgumentParser:
    """Flags of ``omniroute web``."""
    p = argparse.ArgumentParser(
        prog="omniroute web",
        description="Serve the supervisor live web view against the service's Redis "
        "(REDIS_URL). To serve it from the service itself: omniroute serve --web-port N.",
    )
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--log-format", choices=("json", "console"), help="log format (default json)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``omniroute web``."""
    ns = parser().parse_args(argv)
    overrides: dict[str, object] = {"web_host": ns.host, "log_level": ns.log_level}
    if ns.log_format:
        overrides["log_json"] = ns.log_format == "json"
    try:
        settings = Settings.from_env(os.environ, **overrides)
    except InvalidArgument as exc:
        print(f"omniroute web: {exc}", file=sys.stderr)
        return 2
    if not settings.redis_url:
        print(
            "omniroute web: set REDIS_URL to the service's Redis (or run the view inside "
            "the service: omniroute serve --web-port 8080)",
            file=sys.stderr,
        )
        return 2
    port = ns.port if ns.port is not None else (settings.web_port or DEFAULT_PORT)
    logs.configure(json=settings.log_json, level=settings.log_level)
    try:
        return asyncio.run(serve(settings, port))
    except KeyboardInterrupt:
        return 0


async def serve(settings: Settings, port: int) -> int:
    """Run the view until SIGINT or SIGTERM."""
    from router.server import redis_client

    redis = redis_client(settings.redis_url)
    state = RedisState(redis, audit_maxlen=settings.audit_maxlen)
    engine = ViewEngine(state, settings)
    authenticator = Authenticator(state)
    engine.key_listeners.append(authenticator.forget)
    await state.load_scripts()
    await engine.sync_clock()
    hub = asyncio.create_task(engine.hub.run(), name="hub")
    await engine.hub.ready.wait()
    web = WebServer(engine, Supervision(state), authenticator, settings.web_host, port)
    bound = await web.start()
    print(f"Supervisor web view on http://{settings.web_host}:{bound}/", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await web.stop()
    hub.cancel()
    await asyncio.gather(hub, return_exceptions=True)
    await redis.aclose()
    return 0
