"""Running the web view: uvicorn in the caller's event loop, beside the gRPC server (or
alone, for ``omniroute web``), with the feed hooked to the replica's ``Hub``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import structlog
import uvicorn

from router.auth import Authenticator
from router.engine import Engine
from router.supervision import Supervision
from router.web.app import WebContext, create_app
from router.web.feed import Feed
from router.web.session import Sessions
from router.web.store import WebStore

if TYPE_CHECKING:
    from router.server import Service

log = structlog.get_logger(__name__)


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn that leaves signals to the service's own handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebServer:
    """The supervisor view of one process: call ``start`` then ``stop``."""

    def __init__(
        self,
        engine: Engine,
        supervision: Supervision,
        authenticator: Authenticator,
        host: str,
        port: int,
    ) -> None:
        self.engine = engine
        self.supervision = supervision
        self.authenticator = authenticator
        self.host = host
        self.port = port
        self.feed: Feed | None = None
        self._server: _EmbeddedUvicorn | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def beside(cls, service: Service) -> WebServer:
        """The view of a running replica, on its settings' web host and port."""
        return cls(
            service.engine,
            service.supervision,
            service.authenticator,
            service.settings.web_host,
            service.settings.web_port,
        )

    async def start(self) -> int:
        """Listen; returns the port. Raises SystemExit if the port cannot be bound."""
        store = WebStore(self.engine.state.redis)
        secret = await store.session_secret()
        self.feed = Feed(self.engine.state, store)
        self.engine.hub.listeners.append(self.feed.notice)
        self.feed.start()
        ctx = WebContext(
            self.engine,
            self.supervision,
            Sessions(secret, self.engine.state, self.authenticator),
            self.feed,
        )
        config = uvicorn.Config(
            create_app(ctx),
            host=self.host,
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            server_header=False,
        )
        self._server = _EmbeddedUvicorn(config)
        self._task = asyncio.create_task(self._server.serve(), name="web")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # uvicorn's SystemExit, e.g. the port is taken
                raise SystemExit(f"web view could not listen on {self.host}:{self.port}")
            await asyncio.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        log.info("web_started", host=self.host, port=self.port)
        return self.port

    async def stop(self) -> None:
        """End every stream, then stop listening."""
        if self.feed is not None:
            await self.feed.stop()
            with contextlib.suppress(ValueError):
                self.engine.hub.listeners.remove(self.feed.notice)
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        log.info("web_stopped")
