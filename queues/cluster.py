"""One Redis node or a Redis Cluster, behind the same client API.

``REDIS_URL`` names a cluster with the scheme ``redis+cluster://`` (``rediss+cluster://``
with TLS), followed by any one node: ``redis+cluster://:secret@10.0.0.5:7000/0``. The client
discovers the other nodes itself. Any other URL is one node (``redis://``, ``rediss://``,
``unix://``).

Nothing else changes between the two: every tenant's keys share the hash tag ``{tenant}``,
so each script and each pipelined read touches one slot; redis-py's cluster client routes
EVALSHA by its KEYS, follows MOVED and ASK, and retries TRYAGAIN. This module also holds the
operator's slot tools (which node holds a tenant, moving a tenant's slot to another primary)
and the plain one-node connection the hub subscribes on (PUBLISH is broadcast to every node
of a cluster, so any node hears every tenant's notices).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import (
    ClusterError,
    RedisClusterException,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
#: Redis trouble a client may retry (gRPC UNAVAILABLE): connection loss, timeouts, and a
#: cluster failing over or resharding.
STORE_DOWN = (RedisConnectionError, RedisTimeoutError, ClusterError, RedisClusterException)
#: How long a command keeps being retried while its slot is split by a move (TRYAGAIN).
SLOT_MOVE_PATIENCE_S = 10.0
_rotation = itertools.count()
T = TypeVar("T")


def _slot_in_motion(exc: Exception) -> bool:
    # The cluster client retries TRYAGAIN a few times, then gives up with "TTL exhausted".
    return isinstance(exc, TryAgainError) or (
        isinstance(exc, ClusterError) and "TTL exhausted" in str(exc)
    )


async def retry_redirects(call: Callable[[], Awaitable[T]]) -> T:
    """Run `call`, again while its slot is being moved. Safe for any command: TRYAGAIN,
    MOVED and ASK mean the node did not run it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SLOT_MOVE_PATIENCE_S
    pause = 0.01
    while True:
        try:
            return await call()
        except (TryAgainError, ClusterError) as exc:
            if not _slot_in_motion(exc) or loop.time() > deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.2)


def is_cluster_url(url: str) -> bool:
    """Does `url` name a Redis Cluster (``redis+cluster://`` or ``rediss+cluster://``)?"""
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


def node_url(url: str) -> str:
    """The URL of the one node a cluster URL names, as plain ``redis://`` (or as is)."""
    scheme, sep, rest = url.partition("://")
    return f"{CLUSTER_SCHEMES.get(scheme.lower(), scheme)}{sep}{rest}"


def connect(url: str, **options: Any) -> Redis:
    """A client for `url`: a cluster client for a cluster URL, else a one-node client.

    The cluster client has the same command API (scripts, pipelines, pub/sub) and is typed
    as :class:`Redis` so that every caller stays one code path; :func:`is_cluster` tells
    them apart where it matters (pub/sub, slot tools, startup checks).
    """
    if not is_cluster_url(url):
        if options.get("max_connections"):
            # At the limit, a command waits (up to `socket_timeout`) for a connection to
            # come back rather than failing at once with "Too many connections".
            options.setdefault("timeout", options.get("socket_timeout") or 5.0)
            return Redis.from_pool(BlockingConnectionPool.from_url(url, **options))
        return Redis.from_url(url, **options)
    options.setdefault("retry", Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=12))
    return cast(Redis, RedisCluster.from_url(node_url(url), **options))


def is_cluster(redis: Redis) -> bool:
    """Is `redis` a cluster client?"""
    return isinstance(redis, RedisCluster)


async def subscriber(redis: Redis) -> Redis:
    """The client to subscribe on: `redis` itself for one node; for a cluster, a plain
    client of one node, a different one at each call (a dead node is skipped on the next
    reconnect). The caller closes it when it is not `redis`."""
    if not isinstance(redis, RedisCluster):
        return redis
    await redis.initialize()
    nodes = sorted(redis.get_nodes(), key=lambda n: n.name)
    node = nodes[next(_rotation) % len(nodes)]
    kwargs = {
        k: v
        for k, v in node.connection_kwargs.items()
        if k in ("username", "password", "ssl", "socket_timeout", "socket_connect_timeout")
    }
    return Redis(host=node.host, port=node.port, decode_responses=True, **kwargs)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A cluster node as CLUSTER NODES shows it."""

    node_id: str
    address: str
    is_primary: bool
    primary_id: str
    slots: tuple[tuple[int, int], ...]

    def owns(self, slot: int) -> bool:
        """Does this node serve `slot`?"""
        return any(lo <= slot <= hi for lo, hi in self.slots)


def _parse_nodes(raw: Any) -> list[NodeInfo]:
    # redis-py parses CLUSTER NODES into {address: {node_id, flags, master_id, slots}}.
    nodes = []
    for address, n in dict(raw).items():
        flags = str(n.get("flags", "")).split(",")
        if "fail" in flags or "noaddr" in flags:
            continue
        slots = tuple((int(s[0]), int(s[-1])) for s in n.get("slots", ()))
        primary = str(n.get("master_id", "-"))
        nodes.append(
            NodeInfo(
                node_id=str(n["node_id"]),
                address=str(address),
                is_primary="master" in flags,
                primary_id="" if primary == "-" else primary,
                slots=slots,
            )
        )
    return nodes


async def _cluster(redis: Redis) -> RedisCluster:
    if not isinstance(redis, RedisCluster):
        raise ValueError("REDIS_URL names one Redis node, not a cluster (redis+cluster://)")
    await redis.initialize()  # a no-op once the client knows the slot map
    return redis


async def cluster_nodes(redis: Redis) -> list[NodeInfo]:
    """Every healthy node of the cluster, primaries first."""
    cluster = await _cluster(redis)
    raw = await cluster.execute_command("CLUSTER NODES", target_nodes=cluster.get_random_node())
    return sorted(_parse_nodes(raw), key=lambda n: (not n.is_primary, n.address))


async def tenant_slot(redis: Redis, tenant: str) -> int:
    """The hash slot of every key of `tenant` (the slot of ``{tenant}``)."""
    cluster = await _cluster(redis)
    return int(cluster.keyslot(f"{{{tenant}}}"))


async def move_slot(
    redis: Redis, slot: int, to_node_id: str, *, batch: int = 100, timeout_ms: int = 5000
) -> int:
    """Move `slot` to the primary `to_node_id`, live: IMPORTING on the target, MIGRATING on
    the source, MIGRATE of the keys in batches, then SETSLOT NODE on every primary. Clients
    follow ASK while it runs and retry the scripts that find the slot split (TRYAGAIN).
    Returns the number of keys moved (0 when the target already owns the slot)."""
    cluster = await _cluster(redis)
    nodes = await cluster_nodes(redis)
    target = _find(nodes, to_node_id)
    if not target.is_primary:
        raise ValueError(f"node {to_node_id} is a replica: move a slot to a primary")
    source = next((n for n in nodes if n.is_primary and n.owns(slot)), None)
    if source is None:
        raise ValueError(f"no primary serves slot {slot}")
    if source.node_id == target.node_id:
        return 0
    src, dst = _node(cluster, source), _node(cluster, target)
    await cluster.execute_command(
        "CLUSTER SETSLOT", slot, "IMPORTING", source.node_id, target_nodes=dst
    )
    await cluster.execute_command(
        "CLUSTER SETSLOT", slot, "MIGRATING", target.node_id, target_nodes=src
    )
    host, port = target.address.rsplit(":", 1)
    auth = _auth_args(src)
    moved = 0
    while True:
        names: Sequence[str] = await cluster.execute_command(
            "CLUSTER GETKEYSINSLOT", slot, batch, target_nodes=src
        )
        if not names:
            break
        await cluster.execute_command(
            "MIGRATE", host, port, "", 0, timeout_ms, *auth, "KEYS", *names, target_nodes=src
        )
        moved += len(names)
    for node in (dst, src, *(_node(cluster, n) for n in nodes if n.is_primary)):
        await cluster.execute_command(
            "CLUSTER SETSLOT", slot, "NODE", target.node_id, target_nodes=node
        )
    await _refresh(cluster)
    return moved


def _find(nodes: Sequence[NodeInfo], node_id: str) -> NodeInfo:
    matches = [n for n in nodes if n.node_id.startswith(node_id)]
    if len(matches) != 1:
        raise ValueError(f"no single node id starts with {node_id!r}")
    return matches[0]


def _node(cluster: RedisCluster, info: NodeInfo) -> Any:
    host, port = info.address.rsplit(":", 1)
    node = cluster.get_node(host=host, port=int(port))
    if node is None:
        raise ValueError(f"the client does not know node {info.address}")
    return node


def _auth_args(node: Any) -> list[str]:
    password = node.connection_kwargs.get("password")
    if not password:
        return []
    username = node.connection_kwargs.get("username")
    return ["AUTH2", username, password] if username else ["AUTH", password]


async def _refresh(cluster: RedisCluster) -> None:
    # Reload the slot map now rather than on the next MOVED.
    await cluster.nodes_manager.initialize()
