"""Faults at random times and points: replica SIGKILL (one, all three), SIGSTOP past the
offer timeout then SIGCONT, rolling SIGTERM restarts, Redis SIGKILL and restart from its
data directory, optionally Redis restarted from an older copy of its data or stalled past
the client timeout, and latency, jitter, resets and a blackhole between one replica and
Redis. A supervisor restarts replicas that died on their own (e.g. started while Redis was
down).
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from router.chaos.cluster import Cluster, Replica
from router.chaos.history import Recorder
from router.chaos.proxy import FaultProxy
from router.chaos.workload import Floor

#: Seconds a replica may take to serve again before the run counts it as stuck.
SERVE_TIMEOUT_S = 40.0
#: The replicas' Redis client timeout (router.server.redis_client): a stall must pass it.
CLIENT_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class FaultQuota:
    """How many of each fault a run injects."""

    replica_kills: int = 30  # SIGKILLed replica processes (a kill-all counts three)
    redis_restarts: int = 3
    pauses: int = 4
    rolling_restarts: int = 1  # rounds of SIGTERM-restart over all three replicas
    proxy_faults: int = 6
    data_loss: int = 0  # Redis restarted from a copy 0.5-2 s older than the kill
    redis_stalls: int = 0  # Redis SIGSTOPped past the client timeout


def plan(quota: FaultQuota, rng: random.Random) -> list[str]:
    """The faults of a run, shuffled."""
    kill_all = quota.replica_kills // 9  # about a third of the kills come three at once
    kinds = ["kill_all"] * kill_all
    kinds += ["kill_one"] * (quota.replica_kills - 3 * kill_all)
    kinds += ["redis_kill"] * quota.redis_restarts
    kinds += ["pause"] * quota.pauses
    kinds += ["rolling_restart"] * quota.rolling_restarts
    kinds += [rng.choice(("latency", "reset", "blackhole")) for _ in range(quota.proxy_faults)]
    kinds += ["data_loss"] * quota.data_loss
    kinds += ["redis_stall"] * quota.redis_stalls
    rng.shuffle(kinds)
    return kinds


class Nemesis:
    """Injects the planned faults one after another across the load window."""

    def __init__(
        self,
        cluster: Cluster,
        proxy: FaultProxy,
        floor: Floor,
        rec: Recorder,
        rng: random.Random,
        work_dir: Path,
    ) -> None:
        self.cluster = cluster
        self.proxy = proxy
        self.floor = floor
        self.rec = rec
        self.rng = rng
        self.work_dir = work_dir
        self.counts: Counter[str] = Counter()
        self.busy = False
        self.stuck: list[str] = []
        #: (time of copy, time of kill) of every Redis kill, for the at-risk figures.
        self.redis_kills: list[tuple[float, float, str]] = []

    def _fault(self, kind: str, **data: object) -> None:
        self.counts[kind] += 1
        self.rec.add("fault", "nemesis", data={"kind": kind, **data})

    def _pending_all(self) -> list[list[object]]:
        return [p for r in self.cluster.replicas for p in self.floor.pending_on(r.index)]

    async def run(self, kinds: list[str], start: float, end: float) -> None:
        """Inject `kinds` spread over [start, end] (monotonic times), each after the last
        one has healed."""
        if not kinds:
            return
        step = (end - start) / len(kinds)
        for i, kind in enumerate(kinds):
            at = start + step * (i + self.rng.uniform(0.1, 0.6))
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            if self.floor.stopping:
                return
            self.busy = True
            try:
                await getattr(self, f"_{kind}")()
            finally:
                self.busy = False

    # --- replicas ---------------------------------------------------------------------

    def _running(self) -> list[Replica]:
        return [r for r in self.cluster.replicas if r.alive and not r.stopped]

    async def _restart(self, replica: Replica) -> None:
        replica.start()
        if not await replica.wait_serving(SERVE_TIMEOUT_S):
            self.stuck.append(replica.name)
            self.rec.add("info", "nemesis", op="replica_not_serving", data={"r": replica.name})

    async def _kill_one(self) -> None:
        running = self._running() or self.cluster.replicas
        replica = self.rng.choice(running)
        self._fault(
            "replica_kill", replica=replica.name, pending=self.floor.pending_on(replica.index)
        )
        await asyncio.to_thread(replica.kill)
        await asyncio.sleep(self.rng.uniform(0.2, 1.0))
        await self._restart(replica)

    async def _kill_all(self) -> None:
        self._fault("replica_kill_all", pending=self._pending_all())
        self.counts["replica_kill"] += 3
        for replica in self.cluster.replicas:
            await asyncio.to_thread(replica.kill)
        await asyncio.sleep(self.rng.uniform(0.3, 1.5))
        await asyncio.gather(*(self._restart(r) for r in self.cluster.replicas))

    async def _pause(self) -> None:
        replica = self.rng.choice(self._running() or self.cluster.replicas)
        pause_s = self.floor.offer_timeout_s * self.rng.uniform(1.5, 3.5)
        self._fault(
            "replica_pause",
            replica=replica.name,
            pause_s=round(pause_s, 3),
            pending=self.floor.pending_on(replica.index),
        )
        replica.signal(signal.SIGSTOP)
        await asyncio.sleep(pause_s)
        replica.signal(signal.SIGCONT)

    async def _rolling_restart(self) -> None:
        for replica in self.cluster.replicas:
            self._fault(
                "replica_term", replica=replica.name, pending=self.floor.pending_on(replica.index)
            )
            replica.signal(signal.SIGTERM)
            await asyncio.to_thread(replica.reap, 15.0)
            await self._restart(replica)
            await asyncio.sleep(self.rng.uniform(0.2, 1.0))

    async def supervise(self) -> None:
        """Restart replicas that died when the nemesis did not kill them (until cancelled)."""
        while True:
            await asyncio.sleep(0.5)
            if self.busy:
                continue
            for replica in self.cluster.replicas:
                if not replica.alive and not self.floor.stopping:
                    self.rec.add("info", "nemesis", op="replica_died", data={"r": replica.name})
                    self.counts["replica_died"] += 1
                    await self._restart(replica)

    # --- Redis ------------------------------------------------------------------------

    async def _redis_kill(self) -> None:
        node = self.cluster.redis
        self._fault("redis_kill", pending=self._pending_all())
        t = self.rec.now()
        self.redis_kills.append((t - 1.0, t, "kill"))
        await asyncio.to_thread(node.kill)
        await asyncio.sleep(self.rng.uniform(0.2, 1.0))
        await asyncio.to_thread(node.start)
        self.rec.add("info", "nemesis", op="redis_started")

    async def _data_loss(self) -> None:
        node = self.cluster.redis
        copy = self.work_dir / "redis-copy"
        t_copy = self.rec.now()
        await asyncio.to_thread(node.copy_data, copy)
        await asyncio.sleep(self.rng.uniform(0.5, 2.0))
        t_kill = self.rec.now()
        self._fault("redis_data_loss", pending=self._pending_all(), copy_t=round(t_copy, 3))
        self.redis_kills.append((t_copy, t_kill, "data_loss"))
        await asyncio.to_thread(node.kill)
        await asyncio.to_thread(node.restore_data, copy)
        await asyncio.to_thread(node.start)
        self.rec.add("info", "nemesis", op="redis_started")

    async def _redis_stall(self) -> None:
        node = self.cluster.redis
        stall_s = CLIENT_TIMEOUT_S + self.rng.uniform(0.5, 2.0)
        self._fault("redis_stall", stall_s=round(stall_s, 3), pending=self._pending_all())
        node.signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(stall_s)
        finally:
            node.signal(signal.SIGCONT)

    # --- network between replica r0 and Redis -----------------------------------------

    async def _latency(self) -> None:
        latency, jitter = self.rng.uniform(0.02, 0.15), self.rng.uniform(0.0, 0.1)
        hold_s = self.rng.uniform(2.0, 5.0)
        self._fault("proxy_latency", latency_s=round(latency, 3), jitter_s=round(jitter, 3))
        self.proxy.set_latency(latency, jitter)
        await asyncio.sleep(hold_s)
        self.proxy.heal()

    async def _reset(self) -> None:
        for _ in range(self.rng.randint(1, 3)):
            self._fault("proxy_reset", connections=self.proxy.reset_all())
            await asyncio.sleep(self.rng.uniform(0.2, 1.0))

    async def _blackhole(self) -> None:
        hold_s = self.rng.uniform(1.5, CLIENT_TIMEOUT_S + 2.0)
        self._fault("proxy_blackhole", hold_s=round(hold_s, 3), pending=self.floor.pending_on(0))
        self.proxy.blackhole(True)
        try:
            await asyncio.sleep(hold_s)
        finally:
            self.proxy.blackhole(False)

    async def heal(self) -> None:
        """Undo every fault: network healed, Redis and every replica running and serving."""
        self.proxy.heal()
        node = self.cluster.redis
        node.signal(signal.SIGCONT)
        if not await asyncio.to_thread(node.answers):
            await asyncio.to_thread(node.kill)
            await asyncio.to_thread(node.start)
        for replica in self.cluster.replicas:
            replica.signal(signal.SIGCONT)
            if not replica.alive:
                await self._restart(replica)
        for replica in self.cluster.replicas:
            await replica.wait_serving(SERVE_TIMEOUT_S)
