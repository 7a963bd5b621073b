"""One chaos run: start Redis, the fault proxy and three replicas, set two tenants up, drive
load with faults, heal, take the end state, drain, take the drained state, stop everything
and judge the history offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis

from queues import keys
from queues.state import RedisState
from router.auth import Role
from router.chaos.checker import Verdict, check
from router.chaos.cluster import SERVE_MODULE, Cluster, RedisNode, Replica
from router.chaos.history import Recorder
from router.chaos.nemesis import FaultQuota, Nemesis, plan
from router.chaos.proxy import FaultProxy
from router.chaos.workload import (
    CAPACITY,
    CHANNELS,
    AgentSim,
    Behaviour,
    Floor,
    NoticeLog,
    Platform,
    Sampler,
)
from router.client import declare_skills
from router.domain import ContactId, TenantId
from router.pb.omniroute.v1 import resources_pb2 as pb
from router.pb.omniroute.v1 import supervisor_service_pb2 as sup_pb
from router.pb.omniroute.v1 import supervisor_service_pb2_grpc as sup_grpc
from router.supervision import Supervision

PERSISTENCE = "AOF appendonly yes, appendfsync always (plus RDB save points)"


@dataclass(frozen=True)
class ChaosConfig:
    """What one run does."""

    out_dir: Path
    load_s: float = 180.0
    tenants: tuple[str, ...] = ("t1", "t2")
    agents_per_tenant: int = 14
    rate_per_s: float = 60.0  # contacts per second per tenant
    quota: FaultQuota = field(default_factory=FaultQuota)
    behaviour: Behaviour = field(default_factory=Behaviour)
    offer_timeout_s: float = 1.0
    presence_timeout_s: float = 3.0
    drain_s: float = 60.0
    seed: int = 1
    replica_module: str = SERVE_MODULE
    label: str = "chaos"


@dataclass
class RunResult:
    """A finished run: the verdict and the figures around it."""

    verdict: Verdict
    figures: dict[str, Any]
    history_path: Path


async def _keys(url: str, tenants: tuple[str, ...]) -> dict[tuple[str, str], str]:
    """API keys made straight in the store (as ``omniroute bootstrap`` does)."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        supervision = Supervision(RedisState(client))
        made: dict[tuple[str, str], str] = {}
        for tenant in tenants:
            for role in (Role.SUPERVISOR, Role.PLATFORM, Role.AGENT):
                _, made[(tenant, role.value)] = await supervision.create_api_key(
                    TenantId(tenant), role, "", f"chaos {role.value}", "chaos"
                )
        return made
    finally:
        await client.aclose()


async def _set_up(floor: Floor, config: ChaosConfig) -> None:
    """Rules and agents of every tenant, through the supervisor API; capacities recorded."""
    stub = sup_grpc.SupervisorServiceStub(floor.channels[-1])
    for tenant in config.tenants:
        md = floor.md(tenant, "supervisor")
        await declare_skills(stub, f"tenants/{tenant}", ("general", "billing"), md, timeout=10.0)
        for issue, skill, level in (("default", "general", 1), ("billing", "billing", 2)):
            rule = pb.RoutingRule(
                required_skills=[pb.SkillRequirement(skill=skill, min_proficiency=level)]
            )
            await stub.CreateRoutingRule(
                sup_pb.CreateRoutingRuleRequest(
                    parent=f"tenants/{tenant}", issue=issue, routing_rule=rule
                ),
                metadata=md,
                timeout=10.0,
            )
        by_name: dict[str, Any] = {v: k for k, v in CHANNELS.items()}
        for i in range(config.agents_per_tenant):
            agent_id = f"a{i:02d}"
            skills = [pb.Skill(skill="general", proficiency=3)]
            skills.append(pb.Skill(skill="billing", proficiency=3 if i % 2 == 0 else 1))
            agent = pb.Agent(
                display_name=agent_id.upper(),
                skills=skills,
                capacities=[
                    pb.ChannelCapacity(channel=by_name[ch], max_contacts=n)
                    for ch, n in CAPACITY.items()
                ],
            )
            await stub.CreateAgent(
                sup_pb.CreateAgentRequest(
                    parent=f"tenants/{tenant}", agent_id=agent_id, agent=agent
                ),
                metadata=md,
                timeout=10.0,
            )
            floor.rec.add(
                "setup", "harness", tenant=tenant, agent=agent_id, data={"capacity": CAPACITY}
            )
            floor.agents.append(AgentSim(floor, tenant, agent_id))


async def snapshot(floor: Floor, url: str, phase: str | None) -> dict[str, int]:
    """Every known contact's status (and whether it is reachable); recorded as ``final``
    events when `phase` is given. Returns counts per status."""
    client = aioredis.Redis.from_url(url, decode_responses=True, socket_timeout=10.0)
    counts: dict[str, int] = {}
    try:
        if phase is not None:
            await _resolve_unknown_submits(floor, client)
        for tenant, ids in floor.contacts.items():
            t = TenantId(tenant)
            ordered = sorted(ids)
            for start in range(0, len(ordered), 500):
                chunk = ordered[start : start + 500]
                async with client.pipeline(transaction=False) as pipe:
                    for cid in chunk:
                        pipe.hget(keys.contact(t, ContactId(cid)), "status")
                        pipe.zscore(keys.queue(t), cid)
                        pipe.zscore(keys.offers(t), cid)
                    raw = await pipe.execute()
                for i, cid in enumerate(chunk):
                    status, in_queue, in_offers = raw[3 * i], raw[3 * i + 1], raw[3 * i + 2]
                    counts[status or "missing"] = counts.get(status or "missing", 0) + 1
                    if phase is not None:
                        floor.rec.add(
                            "final",
                            "harness",
                            tenant=tenant,
                            contact=cid,
                            status=status or "",
                            data={
                                "phase": phase,
                                "in_queue": in_queue is not None,
                                "in_offers": in_offers is not None,
                            },
                        )
    finally:
        await client.aclose()
    return counts


async def _resolve_unknown_submits(floor: Floor, client: aioredis.Redis) -> None:
    """Submits that never got an answer: did they create a contact? (idempotency record)"""
    for tenant, request_ids in floor.unresolved.items():
        for request_id in sorted(request_ids):
            raw = await client.get(keys.idempotency(TenantId(tenant), "SubmitContact", request_id))
            contact = str(raw).partition("|")[2] if raw else ""
            floor.rec.add(
                "final_request",
                "harness",
                tenant=tenant,
                contact=contact,
                data={"request_id": request_id},
            )
            if contact:
                floor.contacts.setdefault(tenant, set()).add(contact)
        request_ids.clear()


async def _drain(floor: Floor, url: str, drain_s: float) -> dict[str, int]:
    """Every agent present and accepting, held contacts completed again, until every known
    contact is closed or `drain_s` passes."""
    floor.draining = True
    for agent in floor.agents:
        agent.come_back()
        agent.finish_held()
    deadline = time.monotonic() + drain_s
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        with contextlib.suppress(aioredis.RedisError, OSError):
            counts = await snapshot(floor, url, None)
            if not set(counts) - {"completed", "abandoned"}:
                break
    return counts


def _via_proxy(url: str, port: int) -> str:
    parts = urlsplit(url)
    return f"redis://:{parts.password}@127.0.0.1:{port}{parts.path}"


async def run(config: ChaosConfig) -> RunResult:
    """Run the whole thing; processes are always cleaned up."""
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(config.seed)
    rec = Recorder()
    # Each run starts from an empty Redis: a report directory reused from an earlier run
    # would otherwise hand this one the old tenants, rules and contacts.
    shutil.rmtree(out / "redis", ignore_errors=True)
    node = RedisNode(out / "redis")
    url = await asyncio.to_thread(node.start)
    proxy = FaultProxy(node.port, seed=config.seed)
    await proxy.start()
    replicas = [
        Replica(
            i,
            _via_proxy(url, proxy.port) if i == 0 else url,
            out,
            module=config.replica_module,
            offer_timeout_s=config.offer_timeout_s,
            presence_timeout_s=config.presence_timeout_s,
        )
        for i in range(3)
    ]
    cluster = Cluster(node, replicas)
    tasks: list[asyncio.Task[Any]] = []
    floor = Floor(
        rec=rec,
        rng=rng,
        targets=[r.target for r in replicas],
        keys={},
        offer_timeout_s=config.offer_timeout_s,
        behaviour=config.behaviour,
    )
    nemesis = Nemesis(cluster, proxy, floor, rec, rng, out)
    figures: dict[str, Any] = {}
    started = time.monotonic()
    try:
        for replica in replicas:
            replica.start()
        ready = await asyncio.gather(*(r.wait_serving(60.0) for r in replicas))
        if not all(ready):
            raise RuntimeError(f"replicas did not start; see {out}/replica-*.log")
        floor.keys = await _keys(url, config.tenants)
        floor.open_channels()
        await _set_up(floor, config)
        notices = NoticeLog(rec, url)
        tasks.append(asyncio.create_task(notices.run()))
        load_start = time.monotonic()
        load_end = load_start + config.load_s
        rec.add("phase", "harness", op="load_start")
        # Agents and the sampler stay until the harness stops them (below, after the
        # drain): on a slow machine the faults' schedule overruns the load, and agents
        # that left on a fixed clock would leave the drain with nobody to serve it.
        everyone_until = load_end + 3600.0
        tasks += [asyncio.create_task(a.run(everyone_until)) for a in floor.agents]
        sampler = Sampler(floor, url)
        tasks.append(asyncio.create_task(sampler.run(everyone_until)))
        tasks.append(asyncio.create_task(nemesis.supervise()))
        platforms = [Platform(floor, t, config.rate_per_s) for t in config.tenants]
        kinds = plan(config.quota, rng)
        await asyncio.gather(
            *(p.run(load_end) for p in platforms),
            nemesis.run(kinds, load_start + 3.0, load_end - 3.0),
        )
        rec.add("phase", "harness", op="load_end")
        await nemesis.heal()
        await asyncio.sleep(config.offer_timeout_s + 0.5)
        end_counts = await snapshot(floor, url, "end")
        rec.add("phase", "harness", op="drain_start")
        drain_started = time.monotonic()
        await _drain(floor, url, config.drain_s)
        drained_counts = await snapshot(floor, url, "drained")
        figures.update(
            {
                "end_status": end_counts,
                "drained_status": drained_counts,
                "drain_s": round(time.monotonic() - drain_started, 1),
                "load_start_t": round(load_start - started, 3),
                "submits_sent": sum(p.sent for p in platforms),
                "notices": notices.received,
                "load_samples": sampler.samples,
            }
        )
    finally:
        floor.stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await floor.close_channels()
        await proxy.stop()
        await asyncio.to_thread(cluster.close)
        rec.close_open()
    history_path = out / "history.jsonl"
    rec.save(history_path)
    verdict = check(rec.events)
    load_start_t = float(figures.get("load_start_t", 0.0))
    figures.update(
        {
            "label": config.label,
            "config": _config_dict(config),
            "wall_s": round(time.monotonic() - started, 1),
            "persistence": PERSISTENCE,
            "faults_injected": dict(sorted(nemesis.counts.items())),
            "replica_starts": sum(r.starts for r in replicas),
            "replicas_stuck": nemesis.stuck,
            "proxy_resets": proxy.resets,
            "at_risk_per_rollback": _at_risk(rec.events, nemesis.redis_kills),
            "detection_s": (
                None
                if verdict.first_violation_t is None
                else round(verdict.first_violation_t - load_start_t, 3)
            ),
            "verdict": verdict.summary(),
            "events": len(rec.events),
        }
    )
    return RunResult(verdict, figures, history_path)


def _config_dict(config: ChaosConfig) -> dict[str, Any]:
    raw = asdict(config)
    raw["out_dir"] = str(config.out_dir)
    raw["tenants"] = list(config.tenants)
    return raw


def _at_risk(events: list[dict[str, Any]], kills: list[tuple[float, float, str]]) -> list[Any]:
    """Per Redis kill: contacts whose state changed in the window a rollback would undo
    (the copy's age for a data-loss restart; the last second, the AOF fsync period, for a
    plain kill)."""
    result = []
    for t_from, t_to, kind in kills:
        touched = {
            (e.get("tenant"), e.get("contact"))
            for e in events
            if e.get("type") == "server" and t_from <= float(e["t"]) <= t_to
        }
        result.append({"kind": kind, "window_s": round(t_to - t_from, 3), "contacts": len(touched)})
    return result
