"""Live snapshots for open pages, driven by Redis notices, shared by every viewer.

The replica's ``Hub`` hears every tenant's "changed" notices on ``omr:{t}:events``
(whichever replica made the change) and calls :meth:`Feed.notice`. For a tenant with open
pages the feed reads one snapshot after a short debounce, at most one every
``min_interval_s``, renders it once, and hands the same message to every page of the
tenant. A tenant nobody watches costs nothing; a page that (re)connects gets a full
snapshot. A periodic rebuild covers figures that change without a notice (waits crossing
a relaxation step, the 30-minute window) and any notice lost while Redis reconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from queues.state import RedisState
from router.domain import TenantId
from router.web.render import fragments
from router.web.snapshot import read_snapshot
from router.web.store import WebStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Message:
    """One server-sent event, ready to write: a full snapshot of the floor."""

    version: int
    text: str


class Subscriber:
    """One open page: holds only the newest snapshot (older ones are useless)."""

    def __init__(self, tenant: TenantId) -> None:
        self.tenant = tenant
        self._latest: Message | None = None
        self._ready = asyncio.Event()
        self.closed = False

    def offer(self, message: Message) -> None:
        """Replace whatever is pending with `message`."""
        self._latest = message
        self._ready.set()

    def close(self) -> None:
        """End the stream (the service is stopping)."""
        self.closed = True
        self._ready.set()

    async def next(self, timeout_s: float) -> Message | None:
        """The next snapshot, or None after `timeout_s` (time for a keep-alive)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        self._ready.clear()
        message, self._latest = self._latest, None
        return message


@dataclass
class _Tenant:
    subscribers: set[Subscriber] = field(default_factory=set)
    latest: Message | None = None
    dirty: bool = False
    last_build: float = 0.0
    task: asyncio.Task[None] | None = None


class Feed:
    """Per-tenant snapshot broadcaster for one process."""

    def __init__(
        self,
        state: RedisState,
        store: WebStore,
        *,
        debounce_s: float = 0.03,
        min_interval_s: float = 0.5,
        refresh_s: float = 2.0,
    ) -> None:
        self._state = state
        self.store = store
        self._debounce_s = debounce_s
        self._min_interval_s = min_interval_s
        self._refresh_s = refresh_s
        self._tenants: dict[TenantId, _Tenant] = {}
        self._version = 0
        self._ticker: asyncio.Task[None] | None = None
        self.builds = 0

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Start the periodic rebuild."""
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_forever(), name="web-feed")

    async def stop(self) -> None:
        """End every stream and stop building."""
        tasks = [t.task for t in self._tenants.values() if t.task is not None]
        if self._ticker is not None:
            tasks.append(self._ticker)
            self._ticker = None
        for tenant in self._tenants.values():
            for sub in tenant.subscribers:
                sub.close()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- viewers ----------------------------------------------------------------------

    def subscribe(self, tenant: TenantId) -> Subscriber:
        """A new page of `tenant`: it gets the current snapshot at once when one is
        being kept up to date, else a fresh one as soon as it is read."""
        entry = self._tenants.setdefault(tenant, _Tenant())
        sub = Subscriber(tenant)
        if not entry.subscribers:
            entry.latest = None  # nobody watched: what we kept may be stale
        entry.subscribers.add(sub)
        if entry.latest is not None:
            sub.offer(entry.latest)
        else:
            self._schedule(tenant, entry)
        log.info("web_viewer_joined", tenant=tenant, viewers=len(entry.subscribers))
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """The page went away."""
        entry = self._tenants.get(sub.tenant)
        if entry is not None:
            entry.subscribers.discard(sub)
            log.info("web_viewer_left", tenant=sub.tenant, viewers=len(entry.subscribers))

    def viewers(self, tenant: TenantId) -> int:
        """Open pages of `tenant` in this process."""
        entry = self._tenants.get(tenant)
        return len(entry.subscribers) if entry else 0

    # --- notices ----------------------------------------------------------------------

    def notice(self, tenant: TenantId, event: dict[str, Any]) -> None:
        """A Hub listener: something of `tenant` changed somewhere."""
        entry = self._tenants.get(tenant)
        if entry is not None and entry.subscribers:
            self._schedule(tenant, entry)

    def _schedule(self, tenant: TenantId, entry: _Tenant) -> None:
        entry.dirty = True
        if entry.task is None or entry.task.done():
            entry.task = asyncio.create_task(self._build_while_dirty(tenant, entry))

    async def _build_while_dirty(self, tenant: TenantId, entry: _Tenant) -> None:
        await asyncio.sleep(self._debounce_s)  # let a burst of notices settle
        while entry.dirty and entry.subscribers:
            wait = entry.last_build + self._min_interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            entry.dirty = False
            entry.last_build = time.monotonic()
            try:
                message = await self._build(tenant)
            except Exception as exc:  # noqa: BLE001 - keep the pages; retry on the next tick
                log.warning("web_snapshot_failed", tenant=tenant, error=repr(exc))
                return
            entry.latest = message
            for sub in list(entry.subscribers):
                sub.offer(message)

    async def _build(self, tenant: TenantId) -> Message:
        snap = await read_snapshot(self._state, self.store, tenant)
        self._version += 1
        self.builds += 1
        payload = json.dumps(
            {"v": self._version, "now": snap.now_ms, "f": fragments(snap)},
            separators=(",", ":"),
        )
        return Message(self._version, f"id: {self._version}\nevent: snapshot\ndata: {payload}\n\n")

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            for tenant, entry in list(self._tenants.items()):
                if entry.subscribers:
                    self._schedule(tenant, entry)
