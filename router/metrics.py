"""Prometheus metrics: the gRPC server metrics of go-grpc-prometheus, Redis script latency
and errors, and the routing domain's own figures. Off unless ``--metrics-port`` is set.

Three sources, so that summing over replicas is always right:

* per replica, counted where it happens: RPCs (an interceptor), scripts (RedisState's
  observer), routing decisions, offer outcomes, time to offer and to answer;
* shared state (contacts waiting, oldest wait, agents by state, pending offers), read from
  Redis and exported by one replica only: the one holding the lease ``omr:metrics:leader``
  (SET NX PX, renewed every ``REFRESH_S``; when it stops, another takes over after
  ``LEASE_MS``). ``omniroute_metrics_leader`` says which replica it is.

No label carries an agent or contact id: labels are tenant, issue, channel, state, outcome,
result, reason, script and the gRPC method.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from queues import keys
from queues.scripts import SCRIPT_NAMES
from queues.state import RedisState, ScriptResult

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    Handler = grpc.RpcMethodHandler[Any, Any]
else:
    Handler = grpc.RpcMethodHandler

log = structlog.get_logger(__name__)

REFRESH_S = 5.0
LEASE_MS = 15_000
#: Buckets for waits measured in seconds (time to offer, to answer).
WAIT_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
SCRIPT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
#: Error kinds exported from the start (others appear when they first happen).
ERROR_KINDS = ("ConnectionError", "TimeoutError", "NoScriptError", "ClusterError")
_REFUSALS = {0: "contact_taken", -1: "agent_full", -2: "agent_changed"}
_RPC = ("grpc_type", "grpc_service", "grpc_method")


class Metrics:
    """Every metric of one replica, in a registry of its own."""

    def __init__(self, state: RedisState, replica_id: str) -> None:
        self.state = state
        self.replica_id = replica_id
        self.registry = CollectorRegistry()
        r = self.registry
        self.started = Counter("grpc_server_started_total", "RPCs started.", _RPC, registry=r)
        self.handled = Counter(
            "grpc_server_handled_total", "RPCs completed.", (*_RPC, "grpc_code"), registry=r
        )
        self.handling = Histogram(
            "grpc_server_handling_seconds", "RPC handling time.", _RPC, registry=r
        )
        self.script_seconds = Histogram(
            "omniroute_redis_script_seconds", "Lua script latency.", ("script",),
            buckets=SCRIPT_BUCKETS, registry=r,
        )  # fmt: skip
        self.redis_errors = Counter(
            "omniroute_redis_errors_total", "Redis errors by kind.", ("script", "kind"), registry=r
        )
        self.decisions = Counter(
            "omniroute_routing_decisions_total", "Routing commits by result.",
            ("tenant", "result", "reason"), registry=r,
        )  # fmt: skip
        self.relaxations = Counter(
            "omniroute_relaxations_total", "Offers made under a relaxation step.", ("tenant",),
            registry=r,
        )  # fmt: skip
        self.outcomes = Counter(
            "omniroute_offer_outcomes_total", "Offers ended, by outcome.",
            ("tenant", "outcome"), registry=r,
        )  # fmt: skip
        self.to_offer = Histogram(
            "omniroute_time_to_offer_seconds", "Arrival to the accepted offer.",
            ("tenant", "channel"), buckets=WAIT_BUCKETS, registry=r,
        )  # fmt: skip
        self.to_answer = Histogram(
            "omniroute_time_to_answer_seconds", "Arrival to accept.",
            ("tenant", "channel"), buckets=WAIT_BUCKETS, registry=r,
        )  # fmt: skip
        for script in SCRIPT_NAMES:  # exported at 0, so that rate() and alerts work
            for kind in ERROR_KINDS:
                self.redis_errors.labels(script, kind)
        self.shared = SharedGauges()
        r.register(self.shared)
        self._tasks: list[asyncio.Task[None]] = []
        self._http: WSGIServer | None = None
        self.port = 0

    # --- wiring -----------------------------------------------------------------------

    def interceptor(self) -> MetricsInterceptor:
        """The grpc.aio interceptor; put it first, so it sees the final status."""
        return MetricsInterceptor(self)

    async def start(self, host: str, port: int) -> int:
        """Serve /metrics and start the shared-gauge loop; returns the port."""
        self.state.on_script = self.observe_script
        self._http, _ = start_http_server(port, addr=host, registry=self.registry)
        self.port = int(self._http.server_port)
        self._tasks.append(asyncio.create_task(self._lead(), name="metrics-leader"))
        return self.port

    async def stop(self) -> None:
        """Stop the loop and the HTTP server."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            # shutdown() waits for the serving thread's poll (up to 0.5 s): not on the loop.
            await asyncio.to_thread(self._http.shutdown)
            self._http.server_close()

    # --- scripts and the domain -------------------------------------------------------

    def observe_script(
        self, name: str, seconds: float, outcome: str, args: Sequence[Any], res: Any
    ) -> None:
        """RedisState's observer: latency, errors, and what the script decided."""
        if outcome != "ok":
            self.redis_errors.labels(name, outcome).inc()
            return
        self.script_seconds.labels(name).observe(seconds)
        if isinstance(res, ScriptResult):
            self._domain(name, args, res)

    def _domain(self, name: str, args: Sequence[Any], res: ScriptResult) -> None:
        tenant = keys.tenant_of_channel(str(args[5])) if name == "reserve_offer" else ""
        if name == "reserve_offer":
            if res.ok:
                self.decisions.labels(tenant, "routed", "").inc()
                relaxed = self.relaxations.labels(tenant)  # exported from 0 on
                if "relaxation step" in str(args[6]):
                    relaxed.inc()
            else:
                reason = _REFUSALS.get(res.code, str(res.code))
                self.decisions.labels(tenant, "lost_race", reason).inc()
        elif name == "accept_offer" and res.ok and res.values:
            tenant = keys.tenant_of_channel(str(args[3]))
            self.outcomes.labels(tenant, "accepted").inc()
            raw = res.values[0]
            fields = dict(zip(raw[::2], raw[1::2], strict=True)) if isinstance(raw, list) else {}
            with contextlib.suppress(KeyError, ValueError):
                arrived, channel = int(fields["arrived_ms"]), str(fields["ch"])
                self.to_offer.labels(tenant, channel).observe(
                    (int(fields["offered_ms"]) - arrived) / 1000
                )
                self.to_answer.labels(tenant, channel).observe(
                    (int(fields["assigned_ms"]) - arrived) / 1000
                )
        elif name == "release_offer" and res.ok:
            tenant = keys.tenant_of_channel(str(args[5]))
            self.outcomes.labels(tenant, str(args[3])).inc()

    # --- shared gauges ----------------------------------------------------------------

    async def _lead(self) -> None:
        while True:
            try:
                leader = await self.state.hold_lease(keys.METRICS_LEADER, self.replica_id, LEASE_MS)
                self.shared.publish(await self.read_shared() if leader else [], leader)
            except Exception as exc:  # noqa: BLE001 - metrics must never stop the replica
                log.warning("metrics_refresh_failed", error=repr(exc))
                self.shared.publish([], False)
            await asyncio.sleep(REFRESH_S)

    async def refresh(self) -> None:
        """One turn of the shared-gauge loop, now (tests, and the first scrape)."""
        leader = await self.state.hold_lease(keys.METRICS_LEADER, self.replica_id, LEASE_MS)
        self.shared.publish(await self.read_shared() if leader else [], leader)

    async def read_shared(self) -> list[Metric]:
        """The shared gauges, read from Redis (a pipeline per tenant)."""
        waiting = GaugeMetricFamily(
            "omniroute_contacts_waiting", "Contacts waiting.", labels=["tenant", "issue", "channel"]
        )
        oldest = GaugeMetricFamily(
            "omniroute_oldest_wait_seconds", "Longest current wait.",
            labels=["tenant", "issue", "channel"],
        )  # fmt: skip
        agents = GaugeMetricFamily(
            "omniroute_agents", "Agents by state.", labels=["tenant", "state"]
        )
        offers = GaugeMetricFamily("omniroute_offers_pending", "Offers waiting.", labels=["tenant"])
        now_ms = await self.state.now_ms()
        day = datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y%m%d")
        for tenant in sorted(await self.state.tenants()):
            rows, _ = await self.state.queue_views(tenant, day)
            for name, count, first_ms in rows:
                issue, channel = name.rsplit(":", 1)
                waiting.add_metric([tenant, issue, channel], count)
                wait_s = (now_ms - first_ms) / 1000 if first_ms is not None and count else 0.0
                oldest.add_metric([tenant, issue, channel], max(wait_s, 0.0))
            available, signed_in = await self.state.presence_counts(tenant)
            agents.add_metric([tenant, "available"], available)
            agents.add_metric([tenant, "unavailable"], max(signed_in - available, 0))
            offers.add_metric([tenant], await self.state.pending_offers(tenant))
        return [waiting, oldest, agents, offers]


class SharedGauges(Collector):
    """The last shared-gauge snapshot, exported only while this replica leads."""

    def __init__(self) -> None:
        self._families: list[Metric] = []
        self._leader = False

    def publish(self, families: list[Metric], leader: bool) -> None:
        """Replace the snapshot (atomic for the HTTP thread: one assignment each)."""
        self._families, self._leader = families, leader

    def collect(self) -> Iterable[Metric]:
        """The snapshot, and whether this replica leads."""
        lead = GaugeMetricFamily(
            "omniroute_metrics_leader", "1 on the replica exporting the shared gauges."
        )
        lead.add_metric([], 1.0 if self._leader else 0.0)
        yield lead
        yield from self._families


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """grpc_server_* metrics, labelled as go-grpc-prometheus labels them."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(details)
        if handler is None:
            return handler
        service, _, method = str(details.method).lstrip("/").rpartition("/")
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, ("unary", service, method)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, ("server_stream", service, method)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _done(self, labels: tuple[str, str, str], context: Any, started: float, ok: bool) -> None:
        code = "OK" if ok else _code(context)
        self._m.handled.labels(*labels, code).inc()
        self._m.handling.labels(*labels).observe(time.perf_counter() - started)

    def _unary(self, behavior: Any, labels: tuple[str, str, str]) -> Any:
        async def wrapper(request: Any, context: Any) -> Any:
            self._m.started.labels(*labels).inc()
            started, ok = time.perf_counter(), False
            try:
                reply = await behavior(request, context)
                ok = _code(context) == "OK"
                return reply
            finally:
                self._done(labels, context, started, ok)

        return wrapper

    def _stream(self, behavior: Any, labels: tuple[str, str, str]) -> Any:
        async def wrapper(request: Any, context: Any) -> Any:
            self._m.started.labels(*labels).inc()
            started, ok = time.perf_counter(), False
            try:
                async for item in behavior(request, context):
                    yield item
                ok = _code(context) == "OK"
            finally:
                self._done(labels, context, started, ok)

        return wrapper


def _code(context: Any) -> str:
    """The status the handler set (by abort or set_code); OK when none, UNKNOWN on a raise."""
    code = context.code()
    if code is None:
        return "OK"
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    with contextlib.suppress(ValueError):
        return str(grpc.StatusCode(code).name)
    return "UNKNOWN"
