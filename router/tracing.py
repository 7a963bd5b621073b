"""OpenTelemetry traces: a span for every RPC, every Redis script and every routing
decision, and a contact's trace carried through Redis, so that its routing, accept and
completion on any replica join the trace of its submit.

Off by default, and then nothing here does any work: no tracer is installed, the RPC
interceptor is not in the chain, scripts and routing passes find ``tracer()`` None and go
their usual way, and no trace parent is stored. ``omniroute serve --trace-exporter otlp``
installs an SDK tracer provider with a batching OTLP/gRPC exporter, configured by the
standard ``OTEL_*`` variables (endpoint, headers, service name, resource, sampler, batch
sizes), which the OpenTelemetry SDK reads itself. Tests ``install`` an in-memory provider.

The thread of a contact: SubmitContact stores the W3C ``traceparent`` of its span in the
contact's hash (field ``tp``, through the enqueue script); the routing decision, on any
replica, is a child of it; AcceptOffer, DeclineOffer and CompleteContact spans link to it.
Ids (contact, agent, customer) are span attributes, never metric labels.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from importlib import metadata
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from router.ids import new_id

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

    from router.config import Settings

    Handler = grpc.RpcMethodHandler[Any, Any]
else:
    Handler = grpc.RpcMethodHandler

log = structlog.get_logger(__name__)

EXPORTERS = ("off", "otlp")
SERVICE_NAME = "omniroute"
PACKAGE = "/omniroute.v1."
#: Status codes that mark a server span as failed (OpenTelemetry's RPC conventions); the
#: others (NOT_FOUND, INVALID_ARGUMENT, ...) are answers, recorded as the status code only.
SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_CODES = {code.value[0]: code for code in grpc.StatusCode}
_W3C = TraceContextTextMapPropagator()

_tracer: Tracer | None = None
_NOTHING = nullcontext()
#: The provider ``configure`` built, flushed and shut down by ``shutdown``.
_owned: SdkTracerProvider | None = None


def _version() -> str:
    try:
        return metadata.version("omniroute")
    except metadata.PackageNotFoundError:  # run from a source tree without installing
        return "0"


# --- the switch ---------------------------------------------------------------------------


def install(provider: trace.TracerProvider) -> None:
    """Trace this process into `provider`: every replica (``Service``) built after this
    adds the RPC interceptor, and scripts and routing decisions make spans."""
    global _tracer
    _tracer = provider.get_tracer(SERVICE_NAME, _version())


def uninstall() -> None:
    """Tracing off again (tests)."""
    global _tracer
    _tracer = None


def tracer() -> Tracer | None:
    """The tracer, or None when tracing is off: callers then do no tracing work at all."""
    return _tracer


def configure(settings: Settings) -> bool:
    """Install the exporter the settings ask for (``otlp``); whether tracing is on."""
    global _owned
    if settings.trace_exporter == "off":
        return False
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over these defaults.
    detected = dict(Resource.create().attributes)
    if str(detected.get("service.name", "")).startswith("unknown_service"):
        del detected["service.name"]
    defaults = {
        "service.name": SERVICE_NAME,
        "service.version": _version(),
        "service.instance.id": new_id(),
    }
    provider = SdkProvider(resource=Resource({**defaults, **detected}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider)
    _owned = provider
    log.info(
        "tracing_on",
        exporter=settings.trace_exporter,
        service=provider.resource.attributes.get("service.name"),
    )
    return True


def shutdown() -> None:
    """Export what is left and stop the exporter ``configure`` started, if any."""
    global _owned
    if _owned is not None:
        provider, _owned = _owned, None
        uninstall()
        provider.shutdown()


# --- a contact's trace --------------------------------------------------------------------


def current_traceparent() -> str:
    """The W3C ``traceparent`` of the current span ('' when there is none, or tracing is
    off): stored with a submitted contact."""
    if _tracer is None:
        return ""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return ""
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def span_context(traceparent: str) -> SpanContext | None:
    """The span context a stored ``traceparent`` names (None if empty or malformed)."""
    if not traceparent:
        return None
    parent = _W3C.extract({"traceparent": traceparent}, context=Context())
    ctx = trace.get_current_span(parent).get_span_context()
    return ctx if ctx.is_valid else None


def parent_context(traceparent: str) -> Context:
    """A context whose parent is the span `traceparent` names (empty: a new trace)."""
    ctx = span_context(traceparent)
    if ctx is None:
        return Context()
    return trace.set_span_in_context(trace.NonRecordingSpan(ctx), Context())


def link_contact(traceparent: str) -> None:
    """Link the current span (an accept, decline or completion) to the contact's submit."""
    if _tracer is None:
        return
    span = trace.get_current_span()
    ctx = span_context(traceparent)
    if ctx is not None and span.is_recording():
        span.add_link(ctx, {"omniroute.link": "contact_submitted"})


def decision_span(traceparent: str, attributes: Mapping[str, Any]) -> Span | None:
    """A started ``route_contact`` span, child of the contact's submit (None when off)."""
    if _tracer is None:
        return None
    return _tracer.start_span(
        "route_contact", context=parent_context(traceparent), attributes=_clean(attributes)
    )


def ending(
    span: Span | None, attributes: Mapping[str, Any] | None = None
) -> AbstractContextManager[Any]:
    """Make `span` current for the block (so its log lines carry its ids), then end it;
    `attributes` are set on it first."""
    if span is None:
        return _NOTHING
    if attributes:
        span.set_attributes(_clean(attributes))
    return trace.use_span(span, end_on_exit=True)


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes OpenTelemetry accepts: no None, and str/bool/int/float values."""
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        out[key] = value if isinstance(value, str | bool | int | float) else str(value)
    return out


def script_attributes(name: str, keys: list[str], ids: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes of a script's span: db.system, the script, its tenant and the ids."""
    first = keys[0] if keys else ""
    start = first.find("{") + 1
    tenant = first[start : first.find("}", start)] if start else ""
    return _clean(
        {
            "db.system": "redis",
            "db.operation.name": "EVALSHA",
            "omniroute.script": name,
            "omniroute.tenant": tenant,
            **ids,
        }
    )


# --- RPC spans ----------------------------------------------------------------------------


class TracingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """A server span for every Omniroute RPC (health and reflection are not traced): the
    caller's ``traceparent`` metadata is its parent; ends with ``rpc.grpc.status_code`` and
    an error status for the server-side failures. Put it first, so the span holds the rest.

    Not opentelemetry-instrumentation-grpc's aio interceptor: that one keeps the span
    current with a context token that a cancelled stream (every StreamOffers ends so)
    cannot reset, logging "Failed to detach context" each time, and wraps every call's
    context in a proxy."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(details)
        path: str = details.method
        if handler is None or not path.startswith(PACKAGE):
            return handler
        name = path[1:]
        service, _, method = name.rpartition("/")
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, name, attributes),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, name, attributes),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _unary(self, behavior: Any, name: str, attributes: dict[str, str]) -> Any:
        async def wrapper(request: Any, context: Any) -> Any:
            if _tracer is None:
                return await behavior(request, context)
            with _tracer.start_as_current_span(
                name,
                context=_caller(context),
                kind=SpanKind.SERVER,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                error: BaseException | None = None
                try:
                    return await behavior(request, context)
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    _finish(span, context, error)

        return wrapper

    def _stream(self, behavior: Any, name: str, attributes: dict[str, str]) -> Any:
        async def wrapper(request: Any, context: Any) -> AsyncIterator[Any]:
            if _tracer is None:
                async for item in behavior(request, context):
                    yield item
                return
            span = _tracer.start_span(
                name, context=_caller(context), kind=SpanKind.SERVER, attributes=attributes
            )
            # Current for the rest of the RPC, and never detached: a cancelled stream is
            # closed from another context, where the token cannot be reset; the RPC's own
            # context is discarded with it.
            otel_context.attach(trace.set_span_in_context(span, Context()))
            error: BaseException | None = None
            try:
                async for item in behavior(request, context):
                    yield item
            except BaseException as exc:
                error = exc
                raise
            finally:
                _finish(span, context, error)
                span.end()

        return wrapper


def _caller(context: Any) -> Context:
    """The caller's trace context from the call's metadata (empty: a new trace). Never the
    ambient context, so one RPC's span cannot become another's parent."""
    carrier = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
    if "traceparent" not in carrier:
        return Context()
    return _W3C.extract(carrier, context=Context())


def _status(context: Any, error: BaseException | None) -> grpc.StatusCode:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int) and code in _CODES:
        return _CODES[code]
    if error is None:
        return grpc.StatusCode.OK
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return grpc.StatusCode.CANCELLED  # the caller went away (a stream is closed so)
    return grpc.StatusCode.UNKNOWN


def _finish(span: Span, context: Any, error: BaseException | None) -> None:
    """The final status code, the tenant, and an error status for a server failure."""
    code = _status(context, error)
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    tenant = structlog.contextvars.get_contextvars().get("tenant")
    if tenant:  # bound by the auth interceptor once the key is known
        span.set_attribute("omniroute.tenant", str(tenant))
    if code in SERVER_ERRORS:
        detail = context.details() if hasattr(context, "details") else None
        span.set_status(Status(StatusCode.ERROR, f"{code.name}: {detail or ''}".rstrip(": ")))
        if error is not None and not isinstance(error, grpc.aio.AbortError):
            span.record_exception(error)
