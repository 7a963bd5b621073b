"""Tenant isolation under a flood: tenant A's p99 latency alone, and while tenant B floods
the same replica as fast as it can with B rate-limited (and, for comparison, without).

Run by hand (a script, not a timed test; loopback only, bounded in time)::

    .venv/bin/python benchmarks/bench_isolation.py            # about 2 minutes
    .venv/bin/python benchmarks/bench_isolation.py --quick    # about 40 seconds
    .venv/bin/python benchmarks/bench_isolation.py --json

Processes: an embedded ``redis-server``; one ``omniroute serve`` (``--no-dev-keys``,
``--log-level warning``, no default rate limit); this script as tenant A; and, during the
flood phases, this script again as tenant B (``--flood``), a process of its own.

- **A** calls ``ContactService/GetContact`` (API key, role check, one Redis read) on an open
  loop: a fixed schedule of ``--rate-a`` calls per second, not waiting on replies, so a
  slow reply cannot hide the calls that would have queued behind it. A call's latency runs
  from its scheduled time to its reply.
- **B** calls ``--flood-call`` in a closed loop with ``--concurrency`` calls in flight, as
  fast as the server answers, refused or not: ``submit`` (default; SubmitContact, what a
  runaway platform would repeat: customer resolution, enqueue, a routing pass) or ``get``
  (GetContact on its own contact, the cheapest authenticated call).
- B's rate limit is ``omr:{tenant-b}:ratelimit`` (``--limit-b`` calls/s, burst the same),
  set as ``omniroute tenants limit`` sets it; A has none.

Conditions, alternated ``--rounds`` times in one run (the baseline is measured in the same
run, between the flood phases): A alone; A while B floods, B limited with calls over the
limit refused at once; the same with calls over the limit held up to ``--wait-b`` seconds
for their token (then refused); A while B floods unlimited. Per condition the figures are
pooled over rounds; the ratio is A's p99 during a limited flood over A's p99 alone (target:
at most 1.20).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import grpc
from _common import CpuMeter, free_port, machine, percentile, redis_server_version, table
from bench_routing import server_process, wait_serving

from queues.embedded import EmbeddedRedis
from queues.state import RedisState
from router import logs
from router.auth import Role
from router.domain import TenantId
from router.pb.omniroute.v1 import contact_service_pb2, contact_service_pb2_grpc, resources_pb2
from router.ratelimit import Limit
from router.rules import Rule
from router.server import redis_client
from router.supervision import Supervision

TENANT_A, TENANT_B = TenantId("tenant-a"), TenantId("tenant-b")
RATIO_TARGET = 1.20
#: A alone's p99 may differ this much between rounds for the run to give a verdict.
BASELINE_SPREAD = 3.0
ALONE, REFUSED, HELD, UNLIMITED_B = (
    "alone",
    "flood, B limited (refused at once)",
    "flood, B limited (calls held)",
    "flood, B unlimited",
)
CONDITIONS = (ALONE, REFUSED, HELD, UNLIMITED_B)
FLOOD_CALLS = {"submit": "SubmitContact", "get": "GetContact"}


@dataclass(frozen=True)
class Plan:
    """Rates and durations of one run."""

    rate_a: float = 100.0
    limit_b: float = 100.0
    flood_call: str = "submit"
    wait_b: float = 1.0
    concurrency: int = 64
    phase_s: float = 12.0
    warmup_s: float = 2.0
    rounds: int = 3


# --- set-up -----------------------------------------------------------------------------


async def populate(url: str) -> dict[TenantId, dict[str, str]]:
    """A rule and platform + supervisor keys for A and B, straight to Redis."""
    redis = redis_client(url)
    try:
        supervision = Supervision(RedisState(redis))
        keys: dict[TenantId, dict[str, str]] = {}
        for tenant in (TENANT_A, TENANT_B):
            await supervision.declare_skills(tenant, ["billing"], "b")
            await supervision.write_rule(
                tenant, Rule(issue="billing", skills={"billing": 1}), "create", "b"
            )
            _, secret = await supervision.create_api_key(tenant, Role.PLATFORM, "", "b", "b")
            keys[tenant] = {"platform": secret}
        return keys
    finally:
        await redis.aclose()


async def set_limit_b(url: str, limit: Limit | None) -> None:
    """B's own figure, as ``omniroute tenants limit`` writes it, announced to replicas."""
    redis = redis_client(url)
    try:
        state = RedisState(redis)
        await state.put_rate_limit(TENANT_B, None if limit is None else limit.record())
        await state.publish(TENANT_B, {"ev": "limits"})
    finally:
        await redis.aclose()


async def submit_one(target: str, tenant: TenantId, key: str) -> str:
    """One waiting contact of `tenant`; its name."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = contact_service_pb2_grpc.ContactServiceStub(channel)
        contact = await stub.SubmitContact(
            contact_service_pb2.SubmitContactRequest(
                parent=f"tenants/{tenant}",
                contact=resources_pb2.Contact(channel=resources_pb2.CHANNEL_EMAIL, issue="billing"),
            ),
            metadata=(("authorization", f"Bearer {key}"),),
        )
        return str(contact.name)


# --- tenant A: open loop ----------------------------------------------------------------


async def steady(target: str, key: str, name: str, rate: float, seconds: float) -> dict[str, Any]:
    """`rate` GetContact calls per second on a fixed schedule; latencies in ms from each
    call's scheduled time."""
    md = (("authorization", f"Bearer {key}"),)
    request = contact_service_pb2.GetContactRequest(name=name)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    async with grpc.aio.insecure_channel(target) as channel:
        stub = contact_service_pb2_grpc.ContactServiceStub(channel)
        await stub.GetContact(request, metadata=md)  # connected before the clock starts

        async def one(due: float) -> None:
            try:
                await stub.GetContact(request, metadata=md, timeout=10)
                latencies.append((time.perf_counter() - due) * 1000)
            except grpc.aio.AioRpcError as exc:
                errors[exc.code().name] = errors.get(exc.code().name, 0) + 1

        tasks = []
        start = time.perf_counter() + 0.05
        for i in range(int(rate * seconds)):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(due)))
        await asyncio.gather(*tasks)
    return {"latencies_ms": latencies, "errors": errors}


# --- tenant B: the flood (a process of its own) -------------------------------------------


async def flood(
    target: str, key: str, name: str, call: str, concurrency: int, seconds: float
) -> None:
    """Closed loop, `concurrency` in flight, for `seconds`; prints counts as JSON."""
    md = (("authorization", f"Bearer {key}"),)
    parent = name.split("/contacts/")[0]
    counts: dict[str, int] = {}
    async with grpc.aio.insecure_channel(target) as channel:
        stub = contact_service_pb2_grpc.ContactServiceStub(channel)
        stop_at = time.perf_counter() + seconds

        async def one(n: int) -> None:
            if call == "get":
                await stub.GetContact(
                    contact_service_pb2.GetContactRequest(name=name), metadata=md, timeout=10
                )
                return
            contact = resources_pb2.Contact(
                channel=resources_pb2.CHANNEL_EMAIL,
                issue="billing",
                identities=[
                    resources_pb2.Identity(
                        kind=resources_pb2.IDENTITY_KIND_EMAIL, value=f"c{n % 5000}@b.example"
                    )
                ],
            )
            request = contact_service_pb2.SubmitContactRequest(parent=parent, contact=contact)
            await stub.SubmitContact(request, metadata=md, timeout=10)

        sent = itertools.count()

        async def caller() -> None:
            while time.perf_counter() < stop_at:
                try:
                    await one(next(sent))
                    code = "OK"
                except grpc.aio.AioRpcError as exc:
                    code = exc.code().name
                counts[code] = counts.get(code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    print(json.dumps({"counts": counts, "seconds": elapsed}), flush=True)


def start_flood(target: str, key: str, name: str, plan: Plan, seconds: float) -> Any:
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--flood", "--target", target,
        "--key", key, "--contact", name, "--concurrency", str(plan.concurrency),
        "--flood-call", plan.flood_call,
        "--seconds", f"{seconds:.2f}",
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


# --- the run ----------------------------------------------------------------------------


async def phase(
    condition: str,
    url: str,
    target: str,
    keys: dict[TenantId, dict[str, str]],
    names: dict[TenantId, str],
    plan: Plan,
    server_pid: int,
) -> dict[str, Any]:
    """One measured window of A, with or without B's flood."""
    flooding = condition != ALONE
    if flooding:
        limit = {
            REFUSED: Limit.of(plan.limit_b, int(plan.limit_b)),
            HELD: Limit.of(plan.limit_b, int(plan.limit_b), plan.wait_b),
        }.get(condition)
        await set_limit_b(url, limit)
        await asyncio.sleep(0.2)  # the notice reaches the replica
    pids = {"server": server_pid}
    proc = None
    if flooding:
        b_key = keys[TENANT_B]["platform"]
        seconds = plan.warmup_s + plan.phase_s + 1.0
        proc = start_flood(target, b_key, names[TENANT_B], plan, seconds)
        pids["flood B"] = proc.pid
        await asyncio.sleep(plan.warmup_s)
    meter = CpuMeter(pids)
    meter.start()
    a = await steady(target, keys[TENANT_A]["platform"], names[TENANT_A], plan.rate_a, plan.phase_s)
    cpu = meter.stop()
    b: dict[str, Any] = {}
    if proc is not None:
        out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
        b = json.loads(out.strip().splitlines()[-1])
    return {"condition": condition, "a": a, "b": b, "cpu": cpu}


def pooled(results: list[dict[str, Any]], condition: str) -> dict[str, Any]:
    """A's latencies and B's counts of one condition over every round."""
    rows = [r for r in results if r["condition"] == condition]
    lat = [x for r in rows for x in r["a"]["latencies_ms"]]
    errors: dict[str, int] = {}
    for r in rows:
        for code, n in r["a"]["errors"].items():
            errors[code] = errors.get(code, 0) + n
    b_counts: dict[str, int] = {}
    b_seconds = sum(r["b"].get("seconds", 0.0) for r in rows)
    for r in rows:
        for code, n in r["b"].get("counts", {}).items():
            b_counts[code] = b_counts.get(code, 0) + n
    cpu = {k: round(sum(r["cpu"][k] for r in rows) / len(rows), 1) for k in rows[0]["cpu"]}
    return {
        "a_calls": len(lat),
        "a_errors": errors,
        "a_p50_ms": round(percentile(lat, 0.50), 2),
        "a_p99_ms": round(percentile(lat, 0.99), 2),
        "a_max_ms": round(max(lat), 2) if lat else None,
        "a_p99_per_round_ms": [round(percentile(r["a"]["latencies_ms"], 0.99), 2) for r in rows],
        "a_p99_median_of_rounds_ms": round(
            statistics.median(percentile(r["a"]["latencies_ms"], 0.99) for r in rows), 2
        ),
        "b_per_s": {k: round(v / b_seconds, 0) for k, v in b_counts.items()} if b_seconds else {},
        "cpu_percent": cpu,
    }


async def run(plan: Plan) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="omniroute-bench-isolation-") as tmp:
        data = Path(tmp)
        redis = EmbeddedRedis(data / "redis", persistent=False)
        url = redis.start()
        try:
            keys = await populate(url)
            port = free_port()
            target = f"127.0.0.1:{port}"
            with server_process(url, port, data, {}) as proc:
                async with grpc.aio.insecure_channel(target) as channel:
                    await wait_serving(channel, proc)
                names = {t: await submit_one(target, t, keys[t]["platform"]) for t in keys}
                results = []
                for _ in range(plan.rounds):
                    for condition in CONDITIONS:
                        results.append(
                            await phase(condition, url, target, keys, names, plan, proc.pid)
                        )
        finally:
            redis.stop()
    figures = {c: pooled(results, c) for c in CONDITIONS}
    base_cpu = figures[ALONE]["cpu_percent"]["server"]
    for f in figures.values():  # the server's CPU per call of B, beyond what A costs
        b_rate = sum(f["b_per_s"].values())
        extra = (f["cpu_percent"]["server"] - base_cpu) / 100
        f["server_us_per_b_call"] = round(extra / b_rate * 1e6) if b_rate else None
    alone = figures[ALONE]["a_p99_ms"]
    ratios = {c: round(figures[c]["a_p99_ms"] / alone, 3) for c in CONDITIONS[1:]}
    median_alone = figures[ALONE]["a_p99_median_of_rounds_ms"]
    median_ratios = {
        c: round(figures[c]["a_p99_median_of_rounds_ms"] / median_alone, 3) for c in CONDITIONS[1:]
    }
    # A baseline whose p99 swings across rounds measures the machine's other work, not
    # the replica: then no verdict is given.
    rounds = figures[ALONE]["a_p99_per_round_ms"]
    stable = max(rounds) <= BASELINE_SPREAD * min(rounds)
    return {
        "conditions": figures,
        "p99_ratio_to_alone": ratios,
        "p99_median_of_rounds_ratio_to_alone": median_ratios,
        "target_ratio": RATIO_TARGET,
        "baseline_stable": stable,
        "target_met": {c: ratios[c] <= RATIO_TARGET for c in (REFUSED, HELD)} if stable else {},
    }


def report(info: dict[str, Any], plan: Plan, out: dict[str, Any]) -> None:
    print("Tenant isolation: A's latency while B floods (benchmarks/bench_isolation.py)")
    print(
        f"machine: {info['cpus_usable']}/{info['cpus']} cores usable, {info['cpu_model']}, "
        f"Python {info['python']}, grpcio {info['grpcio']}, redis-py {info['redis_py']}, "
        f"redis-server {info['redis_server']}"
    )
    print(
        f"A: GetContact, open loop at {plan.rate_a:g}/s; B: {FLOOD_CALLS[plan.flood_call]}, "
        "closed loop with "
        f"{plan.concurrency} in flight from its own process; B's limit {plan.limit_b:g}/s "
        f"(burst {int(plan.limit_b)}) per replica, over it refused at once or (held) waiting up "
        f"to {plan.wait_b:g} s for a token; {plan.rounds} rounds x {plan.phase_s:g} s per "
        "condition, alternated\n"
    )
    rows = []
    for condition, f in out["conditions"].items():
        b = f["b_per_s"]
        b_text = (
            f"{b.get('OK', 0):,.0f} ok, {b.get('RESOURCE_EXHAUSTED', 0):,.0f} refused" if b else "-"
        )
        cpu = f["cpu_percent"]
        rows.append(
            [
                condition,
                f"{f['a_p50_ms']:.2f}",
                f"{f['a_p99_ms']:.2f}",
                " / ".join(f"{x:.1f}" for x in f["a_p99_per_round_ms"]),
                f"{f['a_max_ms']:.1f}",
                str(sum(f["a_errors"].values())),
                b_text,
                f"{cpu['server']:.0f}%",
                f"{cpu.get('flood B', 0):.0f}%",
                f"{cpu['others']:.0f}%",
            ]
        )
    print(
        table(
            rows,
            [
                "condition",
                "A p50 ms",
                "A p99 ms",
                "p99 by round",
                "A max",
                "A errors",
                "B calls/s",
                "server CPU",
                "B's CPU",
                "others",
            ],
        )
    )
    busy = max(f["cpu_percent"]["others"] for f in out["conditions"].values())
    if busy > 40:
        print(
            f"\nwarning: other processes used up to {busy:.0f}% of a core during a phase "
            "(redis-server and this script count there too): the machine was not quiet"
        )
    per_call = {c: f["server_us_per_b_call"] for c, f in out["conditions"].items()}
    print(
        "\nserver CPU per call of B (beyond A's share): "
        f"{per_call[REFUSED]} us refused at once (mostly refusals), {per_call[HELD]} us held, "
        f"{per_call[UNLIMITED_B]} us unlimited (every call served)"
    )
    print(f"\nA's p99 against A alone (target <= {RATIO_TARGET:.2f}x with B limited):")
    for condition, ratio in out["p99_ratio_to_alone"].items():
        met = out["target_met"].get(condition)
        verdict = "" if met is None else (": met" if met else ": MISSED")
        median = out["p99_median_of_rounds_ratio_to_alone"][condition]
        print(f"  {condition}: {ratio:.2f}x pooled, {median:.2f}x median of rounds{verdict}")
    if not out["baseline_stable"]:
        rounds = out["conditions"][ALONE]["a_p99_per_round_ms"]
        print(
            f"  no verdict: A alone's p99 ranged {min(rounds):.1f}-{max(rounds):.1f} ms across "
            f"rounds (more than {BASELINE_SPREAD:g}x): the machine's other work, not the "
            "replica, set the tail"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or, with ``--flood``, be tenant B)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1 round of 8 s per condition")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--rate-a", type=float, default=Plan.rate_a, help="A's calls/s [100]")
    p.add_argument("--limit-b", type=float, default=Plan.limit_b, help="B's limit/s [100]")
    p.add_argument("--concurrency", type=int, default=Plan.concurrency, help="B's in flight")
    p.add_argument("--flood-call", choices=tuple(FLOOD_CALLS), default=Plan.flood_call)
    p.add_argument(
        "--wait-b", type=float, default=Plan.wait_b, help="B's wait for a token, held phase [1]"
    )
    p.add_argument("--rounds", type=int, default=Plan.rounds)
    p.add_argument("--phase", type=float, default=Plan.phase_s, help="seconds per phase")
    p.add_argument("--flood", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--target", help=argparse.SUPPRESS)
    p.add_argument("--key", help=argparse.SUPPRESS)
    p.add_argument("--contact", help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    if ns.flood:
        asyncio.run(flood(ns.target, ns.key, ns.contact, ns.flood_call, ns.concurrency, ns.seconds))
        return 0
    logs.configure(json=True, level="warning")
    plan = Plan(
        rate_a=ns.rate_a,
        limit_b=ns.limit_b,
        concurrency=ns.concurrency,
        flood_call=ns.flood_call,
        wait_b=ns.wait_b,
        rounds=1 if ns.quick else ns.rounds,
        phase_s=8.0 if ns.quick else ns.phase,
    )
    info: dict[str, Any] = {**machine(), "redis_server": redis_server_version()}
    out = asyncio.run(run(plan))
    if ns.json:
        print(json.dumps({"machine": info, "plan": plan.__dict__, **out}, indent=2))
    else:
        report(info, plan, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
