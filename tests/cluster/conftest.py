"""The cluster variant: a local Redis Cluster (three primaries, three replicas) started once
per run, and ``redis_url`` pointing at it, so that the modules here run the single-node
tests again on a cluster, plus the cluster's own tests (slot moves, failover, SCRIPT FLUSH).

Skipped, with the reason, when ``redis-server`` or ``redis-cli`` is not on PATH.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.harness import LocalCluster, tools_missing
from tests.grpc.conftest import api, make_api

__all__ = ["api", "make_api"]  # the gRPC fixtures, over the cluster


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Six redis-server nodes on loopback, joined into one cluster."""
    reason = tools_missing()
    if reason:
        pytest.skip(reason)
    with LocalCluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_url(local_cluster: LocalCluster) -> str:
    """The cluster's URL (``redis+cluster://``) in place of the single node's."""
    return local_cluster.url
