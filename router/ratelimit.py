"""Per-tenant rate limits: one token bucket per tenant on each replica.

**Local, per replica.** Each replica keeps its buckets in memory, so a call costs no Redis
round trip (as Envoy's local rate limit): what a bucket protects is the replica's own CPU,
and a flood refused here costs it microseconds. With N replicas behind a balancer a tenant
may make up to N times its figure in all; set the figure per replica.

**Figures from shared config.** A tenant's figure is ``omr:{t}:ratelimit`` in Redis (set by
the operator with ``omniroute tenants limit``, never by a tenant's own keys), else the
replica's default (``--rate-limit`` / ``--rate-limit-burst``). A replica reads it on the
tenant's first call, again every ``refresh_s`` in the background, and at once when a change
is announced on the tenant's events channel, so every replica applies the same figure.

**Refused calls** end ``RESOURCE_EXHAUSTED`` with a ``google.rpc.RetryInfo`` (and
``QuotaFailure``, ``ErrorInfo``) in ``grpc-status-details-bin`` and a ``retry-after-ms``
trailer. They are audited without flooding the audit stream: the first refusal of a tenant
is recorded at once, the next ones are counted and written as one record at most every
``audit_every_s``, each naming how many calls of which methods were refused.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import google.rpc.code_pb2 as code_pb2
import google.rpc.error_details_pb2 as error_details_pb2
import google.rpc.status_pb2 as status_pb2
import structlog
from google.protobuf import any_pb2, duration_pb2

from router.domain import TenantId

log = structlog.get_logger(__name__)

#: Trailer with the wait before a retry may succeed, in milliseconds.
RETRY_AFTER = "retry-after-ms"
STATUS_DETAILS = "grpc-status-details-bin"
ERROR_DOMAIN = "omniroute.v1"


#: The longest a call may be held for its token (``max_wait_s``).
MAX_WAIT_S = 10.0


@dataclass(frozen=True, slots=True)
class Limit:
    """Calls per second and burst; a rate of 0 means no limit. A call over the limit waits
    for its token up to ``max_wait_s`` (0: it is refused at once)."""

    rate_per_s: float
    burst: int
    max_wait_s: float = 0.0

    @classmethod
    def of(cls, rate_per_s: float, burst: int = 0, max_wait_s: float = 0.0) -> Limit:
        """A limit whose burst defaults to one second's worth (at least 1)."""
        if rate_per_s <= 0:
            return UNLIMITED
        return cls(rate_per_s, burst or max(1, math.ceil(rate_per_s)), max_wait_s)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Limit:
        """The stored form (``{"rate_per_s": 50, "burst": 100, "max_wait_s": 0}``);
        ValueError if malformed."""
        rate, burst = float(record["rate_per_s"]), int(record.get("burst", 0))
        wait = float(record.get("max_wait_s", 0.0))
        if not (0 <= rate <= 1_000_000 and 0 <= burst <= 1_000_000 and 0 <= wait <= MAX_WAIT_S):
            raise ValueError(f"rate limit out of range: {dict(record)}")
        return cls.of(rate, burst, wait)

    def record(self) -> dict[str, Any]:
        """The stored form."""
        return {"rate_per_s": self.rate_per_s, "burst": self.burst, "max_wait_s": self.max_wait_s}

    @property
    def is_unlimited(self) -> bool:
        """Whether every call passes."""
        return self.rate_per_s <= 0

    def __str__(self) -> str:
        if self.is_unlimited:
            return "unlimited"
        waits = f", waits up to {self.max_wait_s:g} s" if self.max_wait_s > 0 else ""
        return f"{self.rate_per_s:g} calls/s, burst {self.burst}{waits}"


UNLIMITED = Limit(0.0, 0)


class TokenBucket:
    """``burst`` tokens, refilled at ``rate_per_s``; a call takes one. A call that finds none
    may reserve the next one to come, if it comes within ``max_wait_s`` (the count then goes
    below zero: calls waiting in line). Pure: time is `now` (seconds, any monotonic clock)."""

    __slots__ = ("_at", "_tokens", "burst", "max_wait_s", "rate_per_s")

    def __init__(self, limit: Limit, now: float, tokens: float | None = None) -> None:
        self.rate_per_s = limit.rate_per_s
        self.burst = limit.burst
        self.max_wait_s = limit.max_wait_s
        self._tokens = float(limit.burst) if tokens is None else min(tokens, limit.burst)
        self._at = now

    def tokens(self, now: float) -> float:
        """Tokens available at `now` (below zero: reserved by calls still waiting)."""
        return min(float(self.burst), self._tokens + max(0.0, now - self._at) * self.rate_per_s)

    def take(self, now: float, max_wait_s: float | None = None) -> tuple[bool, float]:
        """``(True, wait)``: a token is the call's after `wait` seconds (0: now);
        ``(False, retry)``: refused, and a call `retry` seconds later would be taken.
        `max_wait_s` (e.g. what is left of the call's deadline) may shorten the limit's."""
        tokens = self.tokens(now)
        self._at = max(self._at, now)
        self._tokens = tokens
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return True, 0.0
        wait = (1.0 - tokens) / self.rate_per_s
        patience = self.max_wait_s if max_wait_s is None else min(max_wait_s, self.max_wait_s)
        if wait <= patience:
            self._tokens = tokens - 1.0
            return True, wait
        return False, wait - self.max_wait_s if wait > self.max_wait_s else wait


@dataclass(frozen=True, slots=True)
class Denial:
    """A refused call: which tenant, under which limit, and when to try again."""

    tenant: TenantId
    limit: Limit
    retry_after_s: float

    @property
    def message(self) -> str:
        """The status details."""
        return (
            f"tenant {self.tenant!r} is over its rate limit ({self.limit}, per replica); "
            f"retry after {self.retry_after_s * 1000:.0f} ms"
        )

    def trailers(self) -> tuple[tuple[str, str | bytes], ...]:
        """``retry-after-ms`` and ``grpc-status-details-bin`` (google.rpc.Status with
        RetryInfo, QuotaFailure and ErrorInfo)."""
        retry_ms = max(1, math.ceil(self.retry_after_s * 1000))
        delay = duration_pb2.Duration(seconds=retry_ms // 1000, nanos=retry_ms % 1000 * 1_000_000)
        subject = f"tenants/{self.tenant}"
        details = [
            error_details_pb2.RetryInfo(retry_delay=delay),
            error_details_pb2.QuotaFailure(
                violations=[
                    error_details_pb2.QuotaFailure.Violation(
                        subject=subject, description=f"rate limit: {self.limit}, per replica"
                    )
                ]
            ),
            error_details_pb2.ErrorInfo(
                reason="RATE_LIMITED",
                domain=ERROR_DOMAIN,
                metadata={
                    "tenant": self.tenant,
                    "rate_per_s": f"{self.limit.rate_per_s:g}",
                    "burst": str(self.limit.burst),
                },
            ),
        ]
        packed = []
        for detail in details:
            item = any_pb2.Any()
            item.Pack(detail)
            packed.append(item)
        status = status_pb2.Status(
            code=code_pb2.RESOURCE_EXHAUSTED, message=self.message, details=packed
        )
        return ((RETRY_AFTER, str(retry_ms)), (STATUS_DETAILS, status.SerializeToString()))


class LimitStore(Protocol):
    """Where figures are kept and refusals recorded (``RedisState``)."""

    async def get_rate_limit(self, tenant: TenantId) -> dict[str, Any] | None: ...

    async def append_audit(
        self, tenant: TenantId, actor: str, action: str, target: str, before: str, after: str
    ) -> None: ...


@dataclass(slots=True)
class _Tenant:
    limit: Limit
    bucket: TokenBucket | None
    loaded_at: float
    refreshing: bool = False
    read_seq: int = 0  # the read whose figure is in force (an older read lands late: ignored)
    # refusals not yet in an audit record
    refused: Counter[str] = field(default_factory=Counter)
    refused_under: Limit = UNLIMITED
    actor: str = ""
    first_refused_at: float = 0.0
    audited_at: float = -math.inf
    flush_due: bool = False


class TenantLimiter:
    """The token buckets of one replica, by tenant."""

    def __init__(
        self,
        default: Limit,
        store: LimitStore,
        *,
        replica: str = "",
        refresh_s: float = 10.0,
        audit_every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default = default
        self._store = store
        self._replica = replica
        self._refresh_s = refresh_s
        self._audit_every_s = audit_every_s
        self._clock = clock
        self._tenants: dict[TenantId, _Tenant] = {}
        self._loading: dict[TenantId, asyncio.Future[_Tenant]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._reads = itertools.count(1)

    async def admit(
        self, tenant: TenantId, actor: str, method: str, patience_s: float | None = None
    ) -> Denial | float:
        """Seconds the call must wait for its token before it goes on (0.0: none), or a
        Denial (counted for the audit). `patience_s`: what is left of the call's deadline."""
        entry = self._tenants.get(tenant)
        now = self._clock()
        if entry is None:
            entry = await self._first_load(tenant)
        elif now - entry.loaded_at > self._refresh_s and not entry.refreshing:
            entry.refreshing = True
            self._spawn(self._refresh(tenant))
        if entry.bucket is None:
            return 0.0
        admitted, wait_s = entry.bucket.take(now, patience_s)
        if admitted:
            return wait_s
        self._count_refusal(tenant, entry, actor, method, now)
        return Denial(tenant, entry.limit, wait_s)

    def limit_of(self, tenant: TenantId) -> Limit | None:
        """The figure in force for `tenant` on this replica (None: not seen yet)."""
        entry = self._tenants.get(tenant)
        return None if entry is None else entry.limit

    def forget(self, tenant: TenantId) -> None:
        """The tenant's figure changed: read it again now (a notice listener), even while a
        periodic read is under way, which may have read the figure before the change."""
        if tenant in self._tenants:
            self._spawn(self._refresh(tenant))

    async def close(self) -> None:
        """Stop background work and write the refusals still counted."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for tenant in [t for t, entry in self._tenants.items() if entry.refused]:
            await self._audit(tenant)

    # --- figures ------------------------------------------------------------------------

    async def _first_load(self, tenant: TenantId) -> _Tenant:
        future = self._loading.get(tenant)
        if future is None:
            future = asyncio.ensure_future(self._load(tenant))
            self._loading[tenant] = future
            future.add_done_callback(lambda _: self._loading.pop(tenant, None))
        return await asyncio.shield(future)

    async def _load(self, tenant: TenantId) -> _Tenant:
        seq = next(self._reads)
        return self._apply(tenant, await self._read(tenant), seq)

    async def _refresh(self, tenant: TenantId) -> None:
        seq = next(self._reads)
        self._apply(tenant, await self._read(tenant), seq)

    async def _read(self, tenant: TenantId) -> Limit:
        try:
            record = await self._store.get_rate_limit(tenant)
            return self.default if record is None else Limit.from_record(record)
        except Exception as exc:  # noqa: BLE001 - a store problem must not fail calls
            log.warning("rate_limit_read_failed", tenant=tenant, error=repr(exc))
            entry = self._tenants.get(tenant)
            return entry.limit if entry is not None else self.default

    def _apply(self, tenant: TenantId, limit: Limit, seq: int) -> _Tenant:
        now = self._clock()
        entry = self._tenants.get(tenant)
        if entry is None:
            bucket = None if limit.is_unlimited else TokenBucket(limit, now)
            entry = _Tenant(limit, bucket, now, read_seq=seq)
            self._tenants[tenant] = entry
            return entry
        entry.refreshing = False
        if seq < entry.read_seq:  # a newer read was applied already
            return entry
        entry.read_seq = seq
        if limit != entry.limit:
            kept = entry.bucket.tokens(now) if entry.bucket is not None else None
            entry.bucket = None if limit.is_unlimited else TokenBucket(limit, now, kept)
            log.info("rate_limit_changed", tenant=tenant, before=str(entry.limit), after=str(limit))
            entry.limit = limit
        entry.loaded_at = now
        return entry

    # --- audit --------------------------------------------------------------------------

    def _count_refusal(
        self, tenant: TenantId, entry: _Tenant, actor: str, method: str, now: float
    ) -> None:
        if not entry.refused:
            entry.first_refused_at = now
        entry.refused[method] += 1
        entry.refused_under, entry.actor = entry.limit, actor
        if entry.flush_due:
            return
        entry.flush_due = True
        delay = max(0.0, entry.audited_at + self._audit_every_s - now)
        self._spawn(self._audit(tenant, delay))

    async def _audit(self, tenant: TenantId, delay_s: float = 0.0) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        entry = self._tenants[tenant]
        refused, entry.refused = entry.refused, Counter()
        entry.flush_due, entry.audited_at = False, self._clock()
        if not refused:
            return
        total = sum(refused.values())
        span_s = entry.audited_at - entry.first_refused_at
        methods = ", ".join(f"{m} x{n}" for m, n in refused.most_common())
        replica = f" on replica {self._replica}" if self._replica else ""
        after = (
            f"refused {total} calls in {span_s:.1f} s{replica} over the rate limit "
            f"({entry.refused_under}): {methods}"
        )
        log.warning("rate_limited", tenant=tenant, refused=total, limit=str(entry.refused_under))
        try:
            await self._store.append_audit(
                tenant, entry.actor, "rate_limited", f"tenants/{tenant}", "", after
            )
        except Exception as exc:  # noqa: BLE001 - the log line above still tells
            log.warning("rate_limit_audit_failed", tenant=tenant, error=repr(exc))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
