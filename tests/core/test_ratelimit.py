"""The token bucket behind per-tenant rate limits (pure: time is passed in), and the
refusal it becomes on the wire."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import google.rpc.error_details_pb2 as error_details_pb2
import google.rpc.status_pb2 as status_pb2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.domain import TenantId
from router.ratelimit import UNLIMITED, Denial, Limit, TenantLimiter, TokenBucket

rates = st.floats(min_value=0.1, max_value=1000)
bursts = st.integers(min_value=1, max_value=200)
gaps = st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=300)


waits = st.sampled_from([0.0, 0.0, 0.05, 0.5, 2.0])


@given(rates, bursts, waits, gaps)
def test_a_bucket_never_admits_more_than_burst_plus_rate_times_time(
    rate: float, burst: int, max_wait_s: float, steps: list[float]
) -> None:
    bucket, now = TokenBucket(Limit(rate, burst, max_wait_s), 0.0), 0.0
    admitted_at: list[float] = []  # when each admitted call goes on: after its wait
    for step in steps:
        now += step
        admitted, wait_s = bucket.take(now)
        if admitted:
            assert wait_s <= max_wait_s
            admitted_at.append(now + wait_s)
    admitted_at.sort()
    for i, start in enumerate(admitted_at):  # every window that starts at an admission
        for j in range(i, len(admitted_at)):
            window = admitted_at[j] - start
            assert j - i + 1 <= burst + rate * window + 1e-6


@given(rates, bursts)
def test_a_full_bucket_admits_its_burst_at_once_then_refuses(rate: float, burst: int) -> None:
    bucket = TokenBucket(Limit(rate, burst), 5.0)
    assert all(bucket.take(5.0) == (True, 0.0) for _ in range(burst))
    admitted, retry_s = bucket.take(5.0)
    assert not admitted and retry_s > 0.0


@given(rates, bursts, gaps)
def test_waiting_the_retry_delay_is_enough(rate: float, burst: int, steps: list[float]) -> None:
    bucket, now = TokenBucket(Limit(rate, burst), 0.0), 0.0
    for step in steps:
        now += step
        admitted, retry_s = bucket.take(now)
        if not admitted:
            now += retry_s * (1 + 1e-9) + 1e-12
            assert bucket.take(now) == (True, 0.0)


def test_calls_over_the_limit_wait_in_line_until_the_line_is_too_long() -> None:
    bucket = TokenBucket(Limit(10.0, 2, 0.25), 0.0)
    assert [bucket.take(0.0) for _ in range(2)] == [(True, 0.0), (True, 0.0)]
    waits = [bucket.take(0.0) for _ in range(3)]
    assert [a for a, _ in waits] == [True, True, False]
    assert [round(w, 6) for _, w in waits[:2]] == [0.1, 0.2]
    assert round(waits[2][1], 6) == 0.05  # refused: in 50 ms the line has room again
    assert bucket.take(0.0, max_wait_s=0.01)[0] is False  # a deadline too close
    assert bucket.take(0.05) == (True, 0.25)


def test_a_clock_that_steps_back_adds_no_tokens() -> None:
    bucket = TokenBucket(Limit(1.0, 1), 10.0)
    assert bucket.take(10.0) == (True, 0.0)
    assert not bucket.take(9.0)[0]
    assert not bucket.take(10.5)[0]
    assert bucket.take(11.0) == (True, 0.0)


def test_limits_default_their_burst_and_read_their_stored_form() -> None:
    assert Limit.of(0) is UNLIMITED and UNLIMITED.is_unlimited
    assert Limit.of(2.5) == Limit(2.5, 3)
    assert Limit.of(0.2) == Limit(0.2, 1)
    assert Limit.from_record({"rate_per_s": 50, "burst": 100}) == Limit(50.0, 100)
    assert Limit.from_record(Limit(7.0, 9).record()) == Limit(7.0, 9)
    assert Limit.from_record(Limit(7.0, 9, 1.5).record()) == Limit(7.0, 9, 1.5)
    with pytest.raises(ValueError):
        Limit.from_record({"rate_per_s": 5, "max_wait_s": 60})
    assert Limit.from_record({"rate_per_s": 0}) is UNLIMITED
    with pytest.raises(ValueError):
        Limit.from_record({"rate_per_s": -1})
    with pytest.raises((KeyError, ValueError)):
        Limit.from_record({"burst": 3})
    assert str(Limit(50.0, 100)) == "50 calls/s, burst 100"
    assert str(Limit(50.0, 100, 0.5)) == "50 calls/s, burst 100, waits up to 0.5 s"


def test_a_denial_names_the_tenant_and_carries_retry_info() -> None:
    denial = Denial(TenantId("acme"), Limit(50.0, 100), 0.0123)
    assert "'acme'" in denial.message and "50 calls/s, burst 100" in denial.message
    trailers = dict(denial.trailers())
    assert trailers["retry-after-ms"] == "13"
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])  # type: ignore[arg-type]
    assert status.code == 8 and status.message == denial.message  # RESOURCE_EXHAUSTED
    retry = error_details_pb2.RetryInfo()
    quota = error_details_pb2.QuotaFailure()
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(retry) and status.details[1].Unpack(quota)
    assert status.details[2].Unpack(info)
    assert math.isclose(retry.retry_delay.ToTimedelta().total_seconds(), 0.013)
    assert quota.violations[0].subject == "tenants/acme"
    assert (info.reason, info.metadata["tenant"], info.metadata["burst"]) == (
        "RATE_LIMITED",
        "acme",
        "100",
    )


class FakeStore:
    """Figures in a dict; each read can be held until released; audit records in a list."""

    def __init__(self) -> None:
        self.figures: dict[str, dict[str, Any]] = {}
        self.audit: list[tuple[str, ...]] = []
        self.hold: asyncio.Event | None = None
        self.fail = False

    async def get_rate_limit(self, tenant: TenantId) -> dict[str, Any] | None:
        figure = self.figures.get(tenant)  # what the read sees is fixed when it starts
        if self.hold is not None:
            await self.hold.wait()
        if self.fail:
            raise ConnectionError("store down")
        return figure

    async def append_audit(
        self, tenant: TenantId, actor: str, action: str, target: str, before: str, after: str
    ) -> None:
        self.audit.append((tenant, actor, action, target, before, after))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


T = TenantId("acme")


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_read_that_lands_late_does_not_undo_a_newer_figure() -> None:
    store, clock = FakeStore(), Clock()
    limiter = TenantLimiter(UNLIMITED, store, refresh_s=10, clock=clock)
    assert await limiter.admit(T, "k", "m") == 0.0
    store.hold = asyncio.Event()
    clock.now += 11
    await limiter.admit(T, "k", "m")  # a periodic read starts: it sees no figure
    await settle()
    store.figures[T] = Limit(1.0, 1).record()
    limiter.forget(T)  # the notice of the change: a second read, which sees the figure
    await settle()
    store.hold.set()
    await settle()
    assert limiter.limit_of(T) == Limit(1.0, 1)
    clock.now += 11  # and periodic reads go on
    store.figures[T] = Limit(2.0, 2).record()
    store.hold = None
    await limiter.admit(T, "k", "m")
    await settle()
    assert limiter.limit_of(T) == Limit(2.0, 2)
    await limiter.close()


async def test_a_store_that_fails_leaves_the_figure_in_force_and_calls_going() -> None:
    store, clock = FakeStore(), Clock()
    store.figures[T] = Limit(1.0, 5).record()
    limiter = TenantLimiter(UNLIMITED, store, refresh_s=10, clock=clock)
    assert await limiter.admit(T, "k", "m") == 0.0
    store.fail = True
    clock.now += 11
    assert await limiter.admit(T, "k", "m") == 0.0
    await settle()
    assert limiter.limit_of(T) == Limit(1.0, 5)
    fresh = TenantLimiter(Limit(3.0, 3), store, clock=clock)
    assert await fresh.admit(TenantId("other"), "k", "m") == 0.0  # the default, unread
    assert fresh.limit_of(TenantId("other")) == Limit(3.0, 3)
    await limiter.close()


async def test_refusals_are_written_with_the_limit_that_refused_them() -> None:
    store, clock = FakeStore(), Clock()
    store.figures[T] = Limit(0.001, 1).record()
    limiter = TenantLimiter(UNLIMITED, store, audit_every_s=10, clock=clock)
    assert await limiter.admit(T, "tenants/acme/apiKeys/k1", "A/B") == 0.0
    for _ in range(3):
        assert isinstance(await limiter.admit(T, "tenants/acme/apiKeys/k1", "A/B"), Denial)
        await settle()  # the first refusal is written at once, the others wait their turn
    del store.figures[T]
    limiter.forget(T)
    await settle()
    assert limiter.limit_of(T) is UNLIMITED
    await limiter.close()
    assert [r[2] for r in store.audit] == ["rate_limited", "rate_limited"]
    assert "refused 1 calls" in store.audit[0][5] and "refused 2 calls" in store.audit[1][5]
    assert all("0.001 calls/s, burst 1" in r[5] and "A/B x" in r[5] for r in store.audit)
