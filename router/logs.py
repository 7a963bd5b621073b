"""structlog set-up: JSON lines (or a console view) with context bound per request and the
ids of the current trace span."""

from __future__ import annotations

import logging
import sys

import structlog
from opentelemetry import trace


def configure(*, json: bool = True, level: str = "info") -> None:
    """Configure structlog once per process: JSON to stderr, ISO timestamps, the
    contextvars bound by interceptors (tenant, method, request id) merged in, and the
    current span's trace and span ids when tracing is on."""
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        # Not cached: a cached logger would ignore a later reconfiguration (tests capture
        # logs with structlog.testing.capture_logs after other code configured them).
        cache_logger_on_first_use=False,
    )


def add_trace_ids(
    logger: object, method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Add ``trace_id`` and ``span_id`` of the current OpenTelemetry span, if there is one
    (with tracing off there never is: a context lookup, nothing more)."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event.setdefault("trace_id", f"{ctx.trace_id:032x}")
        event.setdefault("span_id", f"{ctx.span_id:016x}")
    return event
