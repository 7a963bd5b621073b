"""``omniroute tenants``: where each tenant lives on a Redis Cluster, moving a hot
tenant's slot to a primary of its own, and each tenant's rate limit.

Every key of a tenant carries the hash tag ``{tenant}``, so a tenant is exactly one hash slot
(CLUSTER KEYSLOT of ``{tenant}``) and moving that slot moves the tenant, live: replicas keep
serving while it moves (clients follow ASK and retry TRYAGAIN).

    omniroute tenants                          tenant, slot, primary node id and address
    omniroute tenants move acme --to 3f2a9c    move acme's slot to that primary (id prefix)

Both read ``REDIS_URL``, which must name the cluster (``redis+cluster://host:port``).

    omniroute tenants limits                   each tenant's rate limit (own or default)
    omniroute tenants limit acme 50 --burst 100   acme: 50 calls/s per replica, bursts of 100
    omniroute tenants limit acme 50 --wait 1   a call over it waits up to 1 s for its token
    omniroute tenants limit acme unlimited     acme is never limited
    omniroute tenants limit acme default       back to the replicas' --rate-limit

These read ``REDIS_URL`` (one node or a cluster). Rate limits are an operator's setting,
written straight to Redis, never through the API: a tenant's own admin key cannot raise
its limit. A change is audited (actor ``operator``) and applies at once on every replica.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from queues import keys
from queues.cluster import cluster_nodes, is_cluster_url, move_slot, tenant_slot
from router import logs
from router.auth import TENANT_RE
from router.domain import TenantId
from router.ratelimit import MAX_WAIT_S, UNLIMITED, Limit

#: Who the audit record of a rate-limit change names.
OPERATOR = "operator"


def parser() -> argparse.ArgumentParser:
    """Flags of ``omniroute tenants``."""
    p = argparse.ArgumentParser(
        prog="omniroute tenants",
        description="operator: each tenant's Redis Cluster slot and node; move a tenant",
    )
    sub = p.add_subparsers(dest="action")
    sub.add_parser("list", help="each tenant's slot and node (the default)")
    move = sub.add_parser("move", help="move a tenant's slot to another primary, live")
    move.add_argument("tenant", help="tenant id, e.g. acme")
    move.add_argument("--to", required=True, dest="node_id", help="target primary's node id")
    move.add_argument("--batch", type=int, default=100, help="keys per MIGRATE (default 100)")
    sub.add_parser("limits", help="each tenant's rate limit per replica (own, or the default)")
    limit = sub.add_parser("limit", help="set a tenant's rate limit per replica")
    limit.add_argument("tenant", help="tenant id, e.g. acme")
    limit.add_argument(
        "rate", help="calls per second per replica, 'unlimited', or 'default' (clear)"
    )
    limit.add_argument("--burst", type=int, default=0, help="bucket size (default: rate x 1 s)")
    limit.add_argument(
        "--wait",
        type=float,
        default=0.0,
        help="seconds a call over the limit may wait for its token (default 0: refused)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``omniroute tenants``."""
    ns = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    url = os.environ.get("REDIS_URL", "")
    if ns.action in ("limit", "limits"):
        if not url:
            print("omniroute tenants: set REDIS_URL to the service's Redis", file=sys.stderr)
            return 2
        logs.configure(json=True, level="warning")
        if ns.action == "limits":
            return asyncio.run(_limits(url))
        try:
            limit = parse_limit(ns.rate, ns.burst, ns.wait)
            if not TENANT_RE.match(ns.tenant):
                raise ValueError("tenant: 1-63 of [a-z0-9-], starting with a letter")
        except ValueError as exc:
            print(f"omniroute tenants limit: {exc}", file=sys.stderr)
            return 2
        return asyncio.run(_limit(url, TenantId(ns.tenant), limit))
    if not is_cluster_url(url):
        print(
            "omniroute tenants: set REDIS_URL to the cluster, e.g. redis+cluster://host:7000 "
            "(one Redis node has no slots to show or move)",
            file=sys.stderr,
        )
        return 2
    logs.configure(json=True, level="warning")
    if ns.action == "move":
        return asyncio.run(_move(url, ns.tenant, ns.node_id, ns.batch))
    return asyncio.run(_list(url))


async def tenant_rows(url: str) -> list[tuple[str, int, str, str]]:
    """(tenant, slot, primary node id, address) for every known tenant, by tenant."""
    from router.server import redis_client

    redis = redis_client(url)
    try:
        nodes = [n for n in await cluster_nodes(redis) if n.is_primary]
        rows = []
        for tenant in sorted(await redis.smembers(keys.TENANTS)):
            slot = await tenant_slot(redis, str(tenant))
            owner = next((n for n in nodes if n.owns(slot)), None)
            node_id, address = (owner.node_id, owner.address) if owner else ("-", "-")
            rows.append((str(tenant), slot, node_id, address))
        return rows
    finally:
        await redis.aclose()


async def _list(url: str) -> int:
    rows = await tenant_rows(url)
    print(f"{'tenant':<20} {'slot':>5}  {'node id':<40}  address")
    for tenant, slot, node_id, address in rows:
        print(f"{tenant:<20} {slot:>5}  {node_id:<40}  {address}")
    return 0


async def move_tenant(url: str, tenant: str, node_id: str, batch: int = 100) -> int:
    """Move `tenant`'s slot to the primary `node_id`; the number of keys moved."""
    from router.server import redis_client

    redis = redis_client(url)
    try:
        slot = await tenant_slot(redis, tenant)
        return await move_slot(redis, slot, node_id, batch=batch)
    finally:
        await redis.aclose()


async def _move(url: str, tenant: str, node_id: str, batch: int) -> int:
    try:
        moved = await move_tenant(url, tenant, node_id, batch)
    except ValueError as exc:
        print(f"omniroute tenants move: {exc}", file=sys.stderr)
        return 2
    print(f"tenant {tenant}: {moved} keys moved to node {node_id}")
    return 0


def parse_limit(rate: str, burst: int = 0, wait_s: float = 0.0) -> Limit | None:
    """A number of calls/s, ``unlimited``, or ``default`` (None); ValueError otherwise."""
    if rate == "default":
        return None
    if rate == "unlimited":
        return UNLIMITED
    try:
        per_s = float(rate)
    except ValueError:
        raise ValueError(f"rate: a number of calls/s, unlimited or default, got {rate!r}") from None
    if not (0 < per_s <= 1_000_000 and 0 <= burst <= 1_000_000):
        raise ValueError("rate: must be in (0, 1000000] and --burst in 0..1000000")
    if not 0 <= wait_s <= MAX_WAIT_S:
        raise ValueError(f"--wait: must be 0..{MAX_WAIT_S:g} seconds")
    return Limit.of(per_s, burst, wait_s)


async def set_limit(url: str, tenant: TenantId, limit: Limit | None) -> Limit | None:
    """Store `tenant`'s limit (None: the default), audit the change, tell every replica;
    returns the previous own limit."""
    from queues.state import RedisState
    from router.server import redis_client

    redis = redis_client(url)
    try:
        state = RedisState(redis)
        before = await state.put_rate_limit(tenant, None if limit is None else limit.record())
        previous = None if before is None else Limit.from_record(before)
        await state.append_audit(
            tenant,
            OPERATOR,
            "SetRateLimit",
            f"tenants/{tenant}",
            "default" if previous is None else str(previous),
            "default" if limit is None else str(limit),
        )
        await state.register_tenant(tenant)  # so that `tenants limits` lists it
        await state.publish(tenant, {"ev": "limits"})
        return previous
    finally:
        await redis.aclose()


async def limit_rows(url: str) -> list[tuple[str, str]]:
    """(tenant, own limit or 'default') for every known tenant, by tenant."""
    from queues.state import RedisState
    from router.server import redis_client

    redis = redis_client(url)
    try:
        state = RedisState(redis)
        rows = []
        for tenant in sorted(await state.tenants()):
            record = await state.get_rate_limit(tenant)
            rows.append(
                (str(tenant), "default" if record is None else str(Limit.from_record(record)))
            )
        return rows
    finally:
        await redis.aclose()


async def _limit(url: str, tenant: TenantId, limit: Limit | None) -> int:
    previous = await set_limit(url, tenant, limit)
    before = "default" if previous is None else str(previous)
    after = "default (the replicas' --rate-limit)" if limit is None else f"{limit} per replica"
    print(f"tenant {tenant}: rate limit {after} (was {before})")
    return 0


async def _limits(url: str) -> int:
    print(f"{'tenant':<20} rate limit per replica")
    for tenant, text in await limit_rows(url):
        print(f"{tenant:<20} {text}")
    return 0
