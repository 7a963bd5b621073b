"""Fixtures shared by every test: one real Redis server per run, flushed for each test.

`REDIS_URL` points the tests at an existing server (it is FLUSHALLed: never use one that
holds data you want); without it an embedded, non-persistent `redis-server` is started once
per run on a free loopback port and stopped at the end.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio
import structlog

from queues.cluster import connect, is_cluster_url, node_url
from queues.embedded import EmbeddedRedis


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the Redis server for this run: `REDIS_URL`, else an embedded one."""
    external = os.environ.get("REDIS_URL")
    if external:
        yield external
        return
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), persistent=False) as server:
        yield server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A synchronous client (str replies) on an empty database."""
    client: redis.Redis = (
        redis.RedisCluster.from_url(node_url(redis_url), decode_responses=True)  # type: ignore[assignment]
        if is_cluster_url(redis_url)
        else redis.Redis.from_url(redis_url, decode_responses=True)
    )
    client.flushall()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """An asyncio client (str replies) on an empty database, closed after the test."""
    client = connect(redis_url, decode_responses=True)  # a cluster client on a cluster URL
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """Each test starts from structlog's defaults: a command run in-process by an earlier
    test may have configured a level filter that would hide the events a test captures."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
