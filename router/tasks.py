"""Stopping background tasks reliably."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import structlog

log = structlog.get_logger(__name__)


async def stop_tasks(tasks: Sequence[asyncio.Task[None]], timeout_s: float = 5.0) -> None:
    """Cancel `tasks` and wait for them, cancelling again while they linger: a Redis call
    may swallow one cancellation (redis-py turns it into a connection error, which a
    loop that survives Redis hiccups then catches), so one cancel is not enough."""
    pending = {t for t in tasks if not t.done()}
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.2)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved, so it is not reported as never retrieved
    if pending:
        log.warning("tasks_did_not_stop", tasks=[t.get_name() for t in pending])
