"""structlog set-up: JSON lines (or a console view) with context bound per request."""

from __future__ import annotations

import logging
import sys

import structlog


def configure(*, json: bool = True, level: str = "info") -> None:
    """Configure structlog once per process: JSON to stderr, ISO timestamps, the
    contextvars bound by interceptors (tenant, method, request id) merged in."""
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
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
