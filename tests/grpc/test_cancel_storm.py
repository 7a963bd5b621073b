"""Calls cancelled at random moments never get another request's reply (issue 6, item 2).

A smoke size runs in the test command (10,000 calls cancelled before their reply, about
30-60 s on 2 cores); ``make cancel-storm`` runs 100,000 and prints the figures
(``OMNIROUTE_CANCEL_STORM`` sets the number). See ``tests/grpc/cancel_storm.py``.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import pytest
import redis
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from redis.asyncio.connection import Connection

from tests.grpc.cancel_storm import Storm, audit, clean_round, seed
from tests.grpc.conftest import ApiFactory

CANCELLATIONS = int(os.environ.get("OMNIROUTE_CANCEL_STORM", "10000"))


def test_installed_redis_py_has_the_cancellation_fixes() -> None:
    """CVE-2023-28858 was fixed in redis-py 4.3.6, 4.4.3 and 4.5.3; CVE-2023-28859, the
    rest of it, in 4.4.4 and 4.5.4. Every later line has both."""
    version = tuple(int(p) for p in redis.__version__.split(".")[:3])
    assert version >= (4, 5, 4), redis.__version__


async def test_cancelled_calls_never_get_another_requests_reply(make_api: ApiFactory) -> None:
    # Info logs of 100,000s of calls would cost more than the calls (warnings still show).
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    api = await make_api(presence_timeout_s=3600.0)
    floor = await seed(api, contacts=200, agents=40)
    figures = await Storm(api, floor, CANCELLATIONS, seed=6).run()
    summary = figures.summary()
    print("\ncancel storm:", json.dumps(summary))
    assert figures.cancellations >= CANCELLATIONS
    assert not figures.mismatches, figures.mismatches[:10]
    assert not figures.errors, figures.errors
    # Both ways of cancelling an RPC, and cancelled RedisState calls, were exercised.
    assert min(figures.cancelled[k] for k in ("grpc_call", "grpc_task", "redis_task")) > 0

    health = health_pb2_grpc.HealthStub(api.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    clean = await clean_round(api, floor)
    assert (clean.replies_checked, clean.mismatches, dict(clean.errors)) == (200, [], {})

    problems, counts = await audit(api, floor)
    print("cancel storm state:", json.dumps(counts))
    assert not problems, problems[:10]
    assert counts["made_during_storm"] > 0 and counts["absent_after_storm"] > 0


async def test_negative_control_a_client_that_keeps_a_cancelled_reply_is_caught(
    make_api: ApiFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The storm against redis-py made to behave as before the fix (a read cancelled
    half-way leaves its connection open, reply pending, for the next caller): it must
    count replies that belong to other requests."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    original = Connection.read_response

    async def keep_connection(self: Connection, *args: Any, **kwargs: Any) -> Any:
        kwargs["disconnect_on_error"] = False
        return await original(self, *args, **kwargs)

    api = await make_api(presence_timeout_s=3600.0)
    floor = await seed(api, contacts=50, agents=10)
    monkeypatch.setattr(Connection, "read_response", keep_connection)
    figures = await Storm(api, floor, 1_000, seed=6).run(grpc_workers=16, redis_workers=16)
    monkeypatch.undo()
    print("\nnegative control:", json.dumps(figures.summary()))
    assert figures.mismatches, figures.summary()
