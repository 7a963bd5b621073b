"""``omniroute tenants``: where each tenant lives on a Redis Cluster, and moving a hot
tenant's slot to a primary of its own.

Every key of a tenant carries the hash tag ``{tenant}``, so a tenant is exactly one hash slot
(CLUSTER KEYSLOT of ``{tenant}``) and moving that slot moves the tenant, live: replicas keep
serving while it moves (clients follow ASK and retry TRYAGAIN).

    omniroute tenants                          tenant, slot, primary node id and address
    omniroute tenants move acme --to 3f2a9c    move acme's slot to that primary (id prefix)

Both read ``REDIS_URL``, which must name the cluster (``redis+cluster://host:port``).
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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``omniroute tenants``."""
    ns = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    url = os.environ.get("REDIS_URL", "")
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
