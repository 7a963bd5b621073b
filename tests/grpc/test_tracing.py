"""OpenTelemetry traces through real servers on the test Redis: a span for every RPC with
its status, one for every script call, a contact's routing and accept on another replica
joined to its submit's trace through the stored traceparent, trace ids in log lines, the
OTLP exporter delivering to a collector, and nothing at all with tracing off."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Iterator

import grpc
import pytest
import redis.asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from router import logs, tracing
from router.auth import Role
from router.cli import serve_parser
from router.config import Settings
from router.domain import TenantId
from router.errors import InvalidArgument
from router.pb.omniroute.v1 import agent_service_pb2 as agent_pb
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import resources_pb2 as pb
from tests.grpc.conftest import Api, ApiFactory

SUBMIT = "omniroute.v1.ContactService/SubmitContact"
CALLER_TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def log_text(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The service's own log configuration (JSON lines), written here."""
    text = io.StringIO()
    monkeypatch.setattr(sys, "stderr", text)  # read by logs.configure, which keeps it
    logs.configure(json=True, level="info")
    return text


def log_lines(text: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.getvalue().splitlines() if line]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for this test, into memory (the replicas must be started after it)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.uninstall()
        provider.shutdown()


def named(exporter: InMemorySpanExporter, name: str, **attributes: object) -> list[ReadableSpan]:
    """Finished spans called `name` whose attributes include `attributes`."""
    return [
        s
        for s in exporter.get_finished_spans()
        if s.name == name and all(s.attributes.get(k) == v for k, v in attributes.items())  # type: ignore[union-attr]
    ]


def one(exporter: InMemorySpanExporter, name: str, **attributes: object) -> ReadableSpan:
    found = named(exporter, name, **attributes)
    assert len(found) == 1, (
        f"{name} {attributes}: {[s.name for s in exporter.get_finished_spans()]}"
    )
    return found[0]


async def eventually(
    exporter: InMemorySpanExporter, name: str, **attributes: object
) -> ReadableSpan:
    """The span once it has ended (a stream's span ends after the client goes)."""
    for _ in range(200):
        found = named(exporter, name, **attributes)
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no span {name} {attributes}")


def contact_id(contact: pb.Contact) -> str:
    return contact.name.rsplit("/", 1)[1]


def traceparent_of(span: ReadableSpan) -> str:
    ctx = span.get_span_context()
    assert ctx is not None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


async def offered_and_done(api: Api, contact_name: str = "") -> pb.Offer:
    """Sign a1 in, take the next offer on its stream, accept and complete it."""
    await api.sign_in("a1")
    stream = api.stream("a1")
    try:
        offer = await stream.next_offer()
        if contact_name:
            assert offer.contact.name == contact_name
        await api.agents.AcceptOffer(
            agent_pb.AcceptOfferRequest(name=offer.name, token=offer.token),
            metadata=api.md(Role.AGENT),
        )
        await api.agents.CompleteContact(
            agent_pb.CompleteContactRequest(
                name=offer.name, token=offer.token, outcome=pb.OUTCOME_RESOLVED
            ),
            metadata=api.md(Role.AGENT),
        )
    finally:
        await stream.close()
    return offer


async def test_every_rpc_has_a_server_span_with_its_status(
    spans: InMemorySpanExporter,
    make_api: ApiFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = await make_api()
    await api.create_rule("billing", {"billing": 1})
    await api.create_agent("a1", {"billing": 3})
    contact = await api.submit("billing", pb.CHANNEL_CHAT)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await api.get_contact("tenants/t1/contacts/nope")
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await api.contacts.GetContact(
            contact_pb.GetContactRequest(name=contact.name),
            metadata=(("authorization", "Bearer omr_not_a_key"),),
        )
    assert anonymous.value.code() is grpc.StatusCode.UNAUTHENTICATED

    async def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(api.service.engine, "get_contact", broken)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await api.get_contact(contact.name)
    assert failed.value.code() is grpc.StatusCode.INTERNAL
    monkeypatch.undo()
    await health_pb2_grpc.HealthStub(api.channel).Check(health_pb2.HealthCheckRequest())
    with caplog.at_level(logging.ERROR, logger="opentelemetry"):
        await offered_and_done(api, contact.name)
        stream = await eventually(spans, "omniroute.v1.AgentService/StreamOffers")

    submit = one(spans, SUBMIT)
    assert submit.kind is SpanKind.SERVER
    assert submit.parent is None
    assert submit.status.status_code is StatusCode.UNSET
    assert dict(submit.attributes or {}) == {
        "rpc.system": "grpc",
        "rpc.service": "omniroute.v1.ContactService",
        "rpc.method": "SubmitContact",
        "rpc.grpc.status_code": 0,
        "omniroute.tenant": "t1",
    }
    gets = named(spans, "omniroute.v1.ContactService/GetContact")
    by_code = {s.attributes["rpc.grpc.status_code"]: s for s in gets}  # type: ignore[index]
    assert sorted(by_code) == [5, 13, 16]  # NOT_FOUND, INTERNAL, UNAUTHENTICATED
    # An answer such as NOT_FOUND is no failure of the server; INTERNAL is.
    assert by_code[5].status.status_code is StatusCode.UNSET
    assert by_code[16].status.status_code is StatusCode.UNSET
    assert "omniroute.tenant" not in (by_code[16].attributes or {})  # no key, no tenant
    assert by_code[13].status.status_code is StatusCode.ERROR
    assert by_code[13].status.description == "INTERNAL: internal error (logged)"
    for name in ("SignIn", "AcceptOffer", "CompleteContact"):
        span = one(spans, f"omniroute.v1.AgentService/{name}")
        assert span.attributes["rpc.grpc.status_code"] == 0  # type: ignore[index]
    # The desktop closed its stream: CANCELLED, not a server failure, and the span's
    # context needed no detaching from the context the stream was closed in.
    assert stream.attributes["rpc.grpc.status_code"] == 1  # type: ignore[index]
    assert stream.status.status_code is StatusCode.UNSET
    assert not [r for r in caplog.records if "detach" in r.getMessage()]
    assert not [s for s in spans.get_finished_spans() if "grpc.health" in s.name]


async def test_every_script_call_has_a_span_under_its_rpc(
    spans: InMemorySpanExporter, make_api: ApiFactory
) -> None:
    api = await make_api()
    await api.create_rule("billing", {"billing": 1})
    contact = await api.submit("billing", pb.CHANNEL_VOICE, phone="+15550001")
    submit = one(spans, SUBMIT)
    enqueue = one(spans, "enqueue")
    resolve = one(spans, "resolve_customer")
    for script in (enqueue, resolve):
        assert script.kind is SpanKind.CLIENT
        assert script.parent is not None and submit.context is not None
        assert script.parent.span_id == submit.context.span_id
        assert script.context is not None
        assert script.context.trace_id == submit.context.trace_id
        assert script.attributes is not None
        assert script.attributes["db.system"] == "redis"
        assert script.attributes["omniroute.tenant"] == "t1"
        assert script.attributes["omniroute.script.code"] == 1
    assert enqueue.attributes is not None and resolve.attributes is not None
    assert enqueue.attributes["omniroute.contact_id"] == contact_id(contact)
    assert str(resolve.attributes["omniroute.customer_id"]).startswith("cu")
    rule = one(spans, "write_rule")  # the supervisor's CreateRoutingRule
    assert rule.attributes is not None and rule.attributes["omniroute.issue"] == "billing"


async def test_routing_and_accept_on_another_replica_join_the_submits_trace(
    spans: InMemorySpanExporter, make_api: ApiFactory, aredis: redis.asyncio.Redis
) -> None:
    a, b = await make_api(), await make_api()
    await a.create_rule("billing", {"billing": 1})
    await a.create_agent("a1", {"billing": 3})
    contact = await a.submit("billing", pb.CHANNEL_CHAT)  # no agent yet: it waits
    await a.service.engine.router(TenantId("t1")).stop()  # replica A routes no more
    offer = await offered_and_done(b, contact.name)  # B reads it from Redis and routes it

    submit = one(spans, SUBMIT)
    assert submit.context is not None
    trace_id, submit_span_id = submit.context.trace_id, submit.context.span_id
    cid = contact_id(contact)
    assert await aredis.hget(f"omr:{{t1}}:contact:{cid}", "tp") == traceparent_of(submit)

    route = one(spans, "route_contact", **{"omniroute.contact_id": cid})
    assert route.context is not None and route.parent is not None
    assert route.context.trace_id == trace_id  # the decision is in the submit's trace
    assert route.parent.span_id == submit_span_id
    assert route.attributes is not None
    assert route.attributes["omniroute.agent_id"] == "a1"
    assert route.attributes["omniroute.result"] == "routed"
    reserve = one(spans, "reserve_offer", **{"omniroute.contact_id": cid})
    assert reserve.parent is not None and reserve.parent.span_id == route.context.span_id
    assert reserve.attributes is not None and reserve.attributes["omniroute.script.code"] == 1

    for method in ("AcceptOffer", "CompleteContact"):
        rpc = one(spans, f"omniroute.v1.AgentService/{method}")
        assert rpc.context is not None
        assert rpc.context.trace_id != trace_id  # a trace of its own, linked to the submit
        links = [(link.context.trace_id, link.context.span_id) for link in rpc.links]
        assert links == [(trace_id, submit_span_id)], method
    accept = one(spans, "omniroute.v1.AgentService/AcceptOffer")
    script = one(spans, "accept_offer", **{"omniroute.contact_id": cid})
    assert script.parent is not None and accept.context is not None
    assert script.parent.span_id == accept.context.span_id
    assert offer.contact.name == contact.name


async def test_log_lines_carry_the_trace_and_span_ids(
    spans: InMemorySpanExporter, make_api: ApiFactory, log_text: io.StringIO
) -> None:
    api = await make_api()
    await api.create_rule("billing", {"billing": 1})
    await api.create_agent("a1", {"billing": 3})
    contact = await api.submit("billing", pb.CHANNEL_CHAT)
    await offered_and_done(api, contact.name)
    events = {str(line["event"]): line for line in log_lines(log_text)}

    submit = one(spans, SUBMIT)
    route = one(spans, "route_contact")
    assert submit.context is not None and route.context is not None
    queued = events["contact_queued"]  # logged inside SubmitContact
    assert queued["trace_id"] == f"{submit.context.trace_id:032x}"
    assert queued["span_id"] == f"{submit.context.span_id:016x}"
    routed = events["contact_routed"]  # logged by the routing loop, in the decision's span
    assert routed["trace_id"] == f"{submit.context.trace_id:032x}"
    assert routed["span_id"] == f"{route.context.span_id:016x}"
    assert "trace_id" not in events["service_started"]  # outside any span


async def test_a_callers_traceparent_is_the_parent_of_its_rpc_span(
    spans: InMemorySpanExporter, make_api: ApiFactory
) -> None:
    api = await make_api()
    await api.create_rule("billing", {"billing": 1})
    await api.contacts.SubmitContact(
        contact_pb.SubmitContactRequest(
            parent="tenants/t1", contact=pb.Contact(channel=pb.CHANNEL_CHAT, issue="billing")
        ),
        metadata=(*api.md(Role.PLATFORM), ("traceparent", CALLER_TP)),
    )
    submit = one(spans, SUBMIT)
    assert submit.parent is not None and submit.context is not None
    assert submit.parent.is_remote
    assert f"{submit.context.trace_id:032x}" == CALLER_TP.split("-")[1]
    assert f"{submit.parent.span_id:016x}" == CALLER_TP.split("-")[2]


async def test_with_tracing_off_nothing_is_traced_and_everything_works(
    make_api: ApiFactory, aredis: redis.asyncio.Redis, log_text: io.StringIO
) -> None:
    exporter = InMemorySpanExporter()  # a provider that is not installed sees nothing
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    assert tracing.tracer() is None
    assert not tracing.configure(Settings())  # the default: off
    api = await make_api()
    await api.create_rule("billing", {"billing": 1})
    await api.create_agent("a1", {"billing": 3})
    contact = await api.contacts.SubmitContact(
        contact_pb.SubmitContactRequest(
            parent="tenants/t1", contact=pb.Contact(channel=pb.CHANNEL_CHAT, issue="billing")
        ),
        metadata=(*api.md(Role.PLATFORM), ("traceparent", CALLER_TP)),
    )
    await offered_and_done(api, contact.name)
    done = await api.get_contact(contact.name)
    assert done.state == pb.CONTACT_STATE_COMPLETED

    assert exporter.get_finished_spans() == ()
    fields = await aredis.hgetall(f"omr:{{t1}}:contact:{contact_id(contact)}")
    assert fields and "tp" not in fields  # not even the caller's trace is stored
    lines = log_lines(log_text)
    assert {"contact_queued", "contact_routed", "offer_accepted"} <= {x["event"] for x in lines}
    assert not [x for x in lines if "trace_id" in x]
    provider.shutdown()


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace collector that keeps what it is sent."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: object
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


async def test_otlp_exporter_sends_spans_to_the_collector_named_by_the_otel_variables(
    make_api: ApiFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = Collector()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "omniroute-test")
    try:
        assert tracing.configure(Settings.from_env({"OMNIROUTE_TRACE_EXPORTER": "otlp"}))
        api = await make_api()
        await api.create_rule("billing", {"billing": 1})
        await api.submit("billing", pb.CHANNEL_CHAT)
    finally:
        # The exporter is synchronous (a thread of its own); the collector is on this loop.
        await asyncio.to_thread(tracing.shutdown)
        await server.stop(0)
    assert tracing.tracer() is None
    sent = [
        (resource, span)
        for request in collector.requests
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    names = {span.name for _, span in sent}
    assert {SUBMIT, "enqueue", "write_rule"} <= names
    services = {
        a.value.string_value
        for resource, _ in sent
        for a in resource.resource.attributes
        if a.key == "service.name"
    }
    assert services == {"omniroute-test"}


def test_the_exporter_is_a_setting_a_flag_and_a_variable() -> None:
    assert Settings().trace_exporter == "off"
    assert Settings.from_env({"OMNIROUTE_TRACE_EXPORTER": "otlp"}).trace_exporter == "otlp"
    with pytest.raises(InvalidArgument, match="trace_exporter"):
        Settings.from_env({"OMNIROUTE_TRACE_EXPORTER": "jaeger"})
    assert serve_parser().parse_args(["--trace-exporter", "otlp"]).trace_exporter == "otlp"
    assert tracing.span_context("") is None
    assert tracing.span_context("00-not-a-traceparent") is None
