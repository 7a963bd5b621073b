"""The TCP fault proxy in front of a real Redis: passes traffic, delays it, resets it and
holds it in a blackhole."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from router.chaos.proxy import FaultProxy


def _via(redis_url: str, port: int) -> str:
    head, _, _ = redis_url.rpartition("@")
    return f"{head}@127.0.0.1:{port}/0"


async def _proxy(redis_url: str) -> FaultProxy:
    upstream = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    proxy = FaultProxy(upstream)
    await proxy.start()
    return proxy


async def test_proxy_forwards_and_adds_latency(redis_url: str) -> None:
    proxy = await _proxy(redis_url)
    client = aioredis.Redis.from_url(_via(redis_url, proxy.port), decode_responses=True)
    try:
        assert await client.ping()
        proxy.set_latency(0.1, 0.0)
        started = time.monotonic()
        await client.set("chaos:proxy", "1")
        assert await client.get("chaos:proxy") == "1"
        assert time.monotonic() - started >= 0.35  # two round trips, each way delayed
    finally:
        await client.aclose()
        await proxy.stop()


async def test_reset_breaks_open_connections_and_new_ones_work(redis_url: str) -> None:
    proxy = await _proxy(redis_url)
    client = aioredis.Redis.from_url(_via(redis_url, proxy.port), decode_responses=True)
    try:
        await client.ping()

        async def wait_long() -> None:
            await client.blpop(["chaos:nothing"], timeout=5)

        blocked = asyncio.create_task(wait_long())
        await asyncio.sleep(0.2)
        assert proxy.reset_all() >= 1
        with pytest.raises(RedisConnectionError):
            await blocked
        assert await client.ping()
    finally:
        await client.aclose()
        await proxy.stop()


async def test_blackhole_times_clients_out_until_lifted(redis_url: str) -> None:
    proxy = await _proxy(redis_url)
    url = _via(redis_url, proxy.port)
    client = aioredis.Redis.from_url(url, decode_responses=True, socket_timeout=0.5)
    try:
        await client.ping()
        proxy.blackhole(True)
        with pytest.raises((RedisTimeoutError, RedisConnectionError)):
            await client.ping()
        proxy.blackhole(False)
        assert await client.ping()
    finally:
        await client.aclose()
        await proxy.stop()
