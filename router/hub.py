"""The replica's ear on Redis: one pub/sub connection for every tenant's "changed"
notices, fanned out to this replica's routers, agents' offer streams and contact watchers.

Notices are hints, never the truth: a lost notice costs latency, not correctness, since
routers refresh their mirrors periodically and streams re-read pending offers. After a
reconnect every router refreshes in full and wakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import structlog

from queues import keys
from queues.cluster import subscriber
from router.domain import AgentId, ContactId, TenantId

if TYPE_CHECKING:
    from router.engine import Engine

log = structlog.get_logger(__name__)

Event = dict[str, Any]


class Hub:
    """Pub/sub listener and local fan-out."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._offers: defaultdict[tuple[TenantId, AgentId], set[asyncio.Queue[Event]]] = (
            defaultdict(set)
        )
        self._watchers: defaultdict[tuple[TenantId, ContactId], set[asyncio.Queue[Event]]] = (
            defaultdict(set)
        )
        self.ready = asyncio.Event()
        self.listeners: list[Any] = []

    def subscribe_offers(self, tenant: TenantId, agent_id: AgentId) -> asyncio.Queue[Event]:
        """A queue receiving the agent's offer notices."""
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=1000)
        self._offers[(tenant, agent_id)].add(queue)
        return queue

    def unsubscribe_offers(
        self, tenant: TenantId, agent_id: AgentId, queue: asyncio.Queue[Event]
    ) -> None:
        """Stop delivering to `queue`."""
        subs = self._offers.get((tenant, agent_id))
        if subs is not None:
            subs.discard(queue)
            if not subs:
                del self._offers[(tenant, agent_id)]

    def watch_contact(self, tenant: TenantId, contact_id: ContactId) -> asyncio.Queue[Event]:
        """A queue receiving the contact's change notices."""
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=100)
        self._watchers[(tenant, contact_id)].add(queue)
        return queue

    def unwatch_contact(
        self, tenant: TenantId, contact_id: ContactId, queue: asyncio.Queue[Event]
    ) -> None:
        """Stop delivering to `queue`."""
        subs = self._watchers.get((tenant, contact_id))
        if subs is not None:
            subs.discard(queue)
            if not subs:
                del self._watchers[(tenant, contact_id)]

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after errors."""
        while True:
            # One node is enough on a cluster: PUBLISH reaches every node.
            redis = self._engine.state.redis
            client = await subscriber(redis)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(keys.EVENTS_PATTERN)
                self._resync()
                self.ready.set()
                async for message in pubsub.listen():
                    if message.get("type") == "pmessage":
                        self.dispatch(str(message["channel"]), str(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect on any Redis trouble
                log.warning("notice_listener_lost", error=repr(exc))
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):  # closing a broken connection
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    if client is not redis:
                        await client.aclose()

    def _resync(self) -> None:
        for router in self._engine.routers.values():
            router.rules_changed()
            router.force_full_refresh()

    def dispatch(self, channel: str, data: str) -> None:
        """Apply one notice to this replica's routers and streams."""
        try:
            event: Event = json.loads(data)
        except ValueError:
            return
        tenant = keys.tenant_of_channel(channel)
        kind = event.get("ev")
        router = self._engine.router(tenant)
        agent = AgentId(str(event["a"])) if event.get("a") else None
        contact = ContactId(str(event["c"])) if event.get("c") else None
        if kind == "keys":
            for forget in self._engine.key_listeners:
                forget()
            return
        if kind == "limits":
            for reload in self._engine.limit_listeners:
                reload(tenant)
            return
        if kind == "recovering":
            router.pause_until(float(event.get("u", 0)) / 1000)
            for (t, _agent), queues in list(self._offers.items()):
                if t == tenant:  # every desktop re-asserts what it holds
                    self._deliver(queues, event)
        if kind == "queued":
            router.wake()
        elif kind == "rule":
            router.rules_changed()
        if agent is not None:
            load = event.get("ld")
            if kind in ("offered", "requeued", "completed", "escalated") and isinstance(load, dict):
                version = event.get("v")
                offer = (str(contact), int(event.get("tok", 0))) if kind == "offered" else None
                router.load_changed(
                    agent, load, int(version) if version is not None else None, offer
                )
            elif kind in ("offered", "requeued", "completed", "escalated", "withdrawn", "agent"):
                router.agent_changed(agent)
        if contact is not None and kind in (
            "requeued",
            "abandoned",
            "offered",
            "escalated",
            "callback",
        ):
            router.contact_changed(contact)
        if kind in ("requeued", "completed", "withdrawn", "escalated"):
            router.wake()
        if agent is not None and kind in ("offered", "requeued", "withdrawn", "assigned"):
            self._deliver(self._offers.get((tenant, agent)), event)
        if contact is not None:
            self._deliver(self._watchers.get((tenant, contact)), event)
        for listener in self.listeners:
            listener(tenant, event)

    @staticmethod
    def _deliver(queues: set[asyncio.Queue[Event]] | None, event: Event) -> None:
        for queue in queues or ():
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("stream_behind", event=event.get("ev"))
