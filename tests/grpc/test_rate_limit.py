"""Per-tenant rate limits: a tenant over its limit gets RESOURCE_EXHAUSTED naming the limit,
with RetryInfo and a retry-after trailer, and nothing changes in Redis; another tenant is
unaffected; health and reflection are never limited; refusals are audited without a record
per call and without secrets; an operator's change applies on a running replica at once."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import google.rpc.error_details_pb2 as error_details_pb2
import google.rpc.status_pb2 as status_pb2
import grpc
import pytest
import redis.asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from queues import keys
from router.auth import Role
from router.domain import TenantId
from router.pb.omniroute.v1 import agent_service_pb2 as agent_pb
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import resources_pb2 as pb
from router.ratelimit import Limit
from router.tenants_cli import main as tenants_main
from tests.grpc.conftest import Api, ApiFactory, snapshot

#: A rate so slow that no token comes back during a test.
SLOW = 0.001


async def limit(api: Api, tenant: str, rate_per_s: float, burst: int) -> None:
    """Store a tenant's own limit, as `omniroute tenants limit` does."""
    await api.service.state.put_rate_limit(TenantId(tenant), Limit.of(rate_per_s, burst).record())


async def stats(api: Api, tenant: str = "t1") -> None:
    await api.contacts.GetQueueStats(
        contact_pb.GetQueueStatsRequest(parent=f"tenants/{tenant}"),
        metadata=api.md(Role.PLATFORM, tenant),
    )


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    return info.value


async def rate_limited_records(aredis: redis.asyncio.Redis, tenant: str) -> list[dict[str, str]]:
    entries = await aredis.xrange(keys.audit(TenantId(tenant)))
    return [fields for _, fields in entries if fields["action"] == "rate_limited"]


async def test_a_tenant_over_its_limit_is_refused_and_nothing_changes(
    api: Api, aredis: redis.asyncio.Redis
) -> None:
    await limit(api, "t1", SLOW, 3)
    for _ in range(3):
        await stats(api)
    before = await snapshot(aredis, skip=(":audit",))
    error = await refused(api.submit("billing", pb.CHANNEL_CHAT, phone="+15550001"))
    await refused(
        api.agents.StreamOffers(
            agent_pb.StreamOffersRequest(name="tenants/t1/agents/a1"), metadata=api.md(Role.AGENT)
        ).read()
    )
    await refused(api.create_rule("billing", {"billing": 1}))
    assert await snapshot(aredis, skip=(":audit",)) == before

    details = error.details() or ""
    assert "tenant 't1' is over its rate limit" in details
    assert "0.001 calls/s, burst 3" in details
    trailers = dict(error.trailing_metadata() or ())
    assert int(trailers["retry-after-ms"]) > 0
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert status.message == details
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in status.details) and retry.retry_delay.seconds > 0

    for _ in range(20):  # another tenant is not touched by t1's limit
        await stats(api, "t2")
    await api.create_rule("billing", {"billing": 1}, tenant="t2")  # and writes


async def test_calls_over_a_limit_with_a_wait_are_held_in_line_then_refused(api: Api) -> None:
    await api.service.state.put_rate_limit(TenantId("t1"), Limit.of(2.0, 1, 1.0).record())
    calls = [stats(api) for _ in range(4)]  # now, after 0.5 s, after 1 s; the 4th: refused
    results = await asyncio.gather(*calls, return_exceptions=True)
    refusals = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(refusals) == 1 and sum(r is None for r in results) == 3
    assert refusals[0].code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "waits up to 1 s" in (refusals[0].details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as info:  # a deadline shorter than the line
        await api.contacts.GetQueueStats(
            contact_pb.GetQueueStatsRequest(parent="tenants/t1"),
            metadata=api.md(Role.PLATFORM),
            timeout=0.2,
        )
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_the_default_limits_every_tenant_and_a_tenant_of_its_own_wins(
    make_api: ApiFactory,
) -> None:
    api = await make_api(rate_limit_per_s=SLOW, rate_limit_burst=2)
    await limit(api, "t2", 0, 0)  # t2: unlimited
    await stats(api)
    await stats(api)
    await refused(stats(api))
    for _ in range(10):
        await stats(api, "t2")


async def test_health_and_reflection_are_never_limited(make_api: ApiFactory) -> None:
    api = await make_api(rate_limit_per_s=SLOW, rate_limit_burst=1)
    await stats(api)
    await refused(stats(api))
    health = health_pb2_grpc.HealthStub(api.channel)
    reflect = reflection_pb2_grpc.ServerReflectionStub(api.channel)
    for _ in range(30):
        reply = await health.Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        call = reflect.ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        assert (await call.read()).list_services_response.service
        await call.done_writing()


async def test_refusals_are_audited_in_few_records_without_secrets(
    make_api: ApiFactory, aredis: redis.asyncio.Redis
) -> None:
    api = await make_api()
    await limit(api, "t1", SLOW, 1)
    await stats(api)
    for _ in range(40):
        await refused(stats(api))
    for _ in range(200):  # the first refusal is written at once, in the background
        if await rate_limited_records(aredis, "t1"):
            break
        await asyncio.sleep(0.01)
    assert len(await rate_limited_records(aredis, "t1")) == 1  # the others wait their turn
    await api.service.limiter.close()  # as on shutdown: writes what is still counted
    records = await rate_limited_records(aredis, "t1")
    assert len(records) == 2
    counts = [int(re.search(r"refused (\d+) calls", r["after"]).group(1)) for r in records]  # type: ignore[union-attr]
    assert sum(counts) == 40
    assert all("ContactService/GetQueueStats" in r["after"] for r in records)
    secret = api.keys[("t1", Role.PLATFORM)]
    key_id = secret.split("_")[2]
    for record in records:
        assert record["actor"] == f"tenants/t1/apiKeys/{key_id}"
        assert record["target"] == "tenants/t1"
        assert not any(secret in value or secret[-48:] in value for value in record.values())
    assert await rate_limited_records(aredis, "t2") == []


async def test_an_operators_change_applies_at_once_and_is_audited(
    api: Api,
    redis_url: str,
    aredis: redis.asyncio.Redis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await stats(api)  # the replica has read t1's figure: the default, no limit
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert await asyncio.to_thread(tenants_main, ["limit", "t1", "0.001", "--burst", "1"]) == 0
    assert "tenant t1: rate limit 0.001 calls/s, burst 1 per replica (was default)" in (
        capsys.readouterr().out
    )
    limiter = api.service.limiter
    for _ in range(200):  # the notice reaches the replica's hub
        if limiter.limit_of(TenantId("t1")) == Limit(SLOW, 1):
            break
        await asyncio.sleep(0.01)
    assert limiter.limit_of(TenantId("t1")) == Limit(SLOW, 1)
    await stats(api)
    await refused(stats(api))
    assert await asyncio.to_thread(tenants_main, ["limits"]) == 0
    assert re.search(r"t1\s+0.001 calls/s, burst 1", capsys.readouterr().out)

    assert await asyncio.to_thread(tenants_main, ["limit", "t1", "default"]) == 0
    for _ in range(200):
        if limiter.limit_of(TenantId("t1")) == limiter.default:
            break
        await asyncio.sleep(0.01)
    await stats(api)
    events = [f for _, f in await aredis.xrange(keys.audit(TenantId("t1")))]
    changes = [
        (e["actor"], e["before"], e["after"]) for e in events if e["action"] == "SetRateLimit"
    ]
    assert changes == [
        ("operator", "default", "0.001 calls/s, burst 1"),
        ("operator", "0.001 calls/s, burst 1", "default"),
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["limit", "t1", "fast"], "rate: a number of calls/s, unlimited or default, got 'fast'"),
        (["limit", "t1", "-5"], "rate: must be in (0, 1000000]"),
        (["limit", "T 1", "5"], "tenant: 1-63 of [a-z0-9-]"),
    ],
)
def test_a_bad_limit_is_refused_by_the_command(
    argv: list[str],
    message: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert tenants_main(argv) == 2
    assert message in capsys.readouterr().err
