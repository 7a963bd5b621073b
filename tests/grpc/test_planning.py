"""PlanningService: plans as long-running jobs of one replica, run for real on a small
forecast (one morning, two skill groups), watched, read, refused and failed."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import grpc
import pytest

from router.auth import Role
from router.domain import TenantId
from router.errors import ResourceExhausted
from router.pb.omniroute.v1 import planning_service_pb2 as plan_pb
from router.pb.omniroute.v1 import planning_service_pb2_grpc as plan_grpc
from router.planning import Planner, PlanState
from simulations.planning.api import PlanProgress, PlanResult, ProgressCallback
from simulations.planning.model import PlanRequest
from tests.grpc.conftest import Api

EXAMPLES = Path(__file__).resolve().parents[2] / "simulations" / "examples"
SPEC = (EXAMPLES / "plan_forecast_day.yaml").read_text()
FORECAST = plan_pb.PlanFile(name="forecast.csv", content=(EXAMPLES / "forecast.csv").read_text())
#: Demand for `tech` from 09:00, but no template serves `tech`: the plan cannot be met.
NO_TECH_SHIFT = """\
name: no-tech
interval: 15m
days: 1
demand: {forecast: forecast.csv}
groups:
  - {name: billing, issues: [billing]}
  - {name: tech, issues: [tech]}
penalties: {under: hard}
templates:
  - {name: morning, skills: [billing], starts: ["08:00", "09:00"], length: 4h}
loop: {iterations: 1}
"""
T1 = "tenants/t1"


def stub(api: Api) -> plan_grpc.PlanningServiceStub:
    return plan_grpc.PlanningServiceStub(api.channel)


async def create(
    api: Api, spec: str = SPEC, *, role: Role = Role.PLANNER, request_id: str = ""
) -> plan_pb.Plan:
    request = plan_pb.CreatePlanRequest(
        parent=T1, plan_spec=spec, files=[FORECAST], request_id=request_id
    )
    return await stub(api).CreatePlan(request, metadata=api.md(role))


async def watch(api: Api, name: str, role: Role = Role.PLANNER) -> list[plan_pb.PlanProgress]:
    call = stub(api).WatchPlan(plan_pb.WatchPlanRequest(name=name), metadata=api.md(role))
    return [event async for event in call]


async def status(awaitable: object) -> tuple[grpc.StatusCode, str]:
    try:
        await awaitable  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


async def test_a_plan_runs_to_success_with_rising_progress_and_a_result(api: Api) -> None:
    created = await create(api, request_id="morning-1")
    assert created.name.startswith("tenants/t1/plans/")
    assert created.state == plan_pb.PLAN_STATE_QUEUED
    assert created.display_name == "forecast-morning"

    events = await asyncio.wait_for(watch(api, created.name), 60)
    fractions = [e.progress_fraction for e in events]
    assert len(events) >= 3
    assert fractions == sorted(fractions)
    assert events[-1].state == plan_pb.PLAN_STATE_SUCCEEDED
    assert events[-1].progress_fraction == 1.0
    assert {"cover", "simulate"} <= {e.stage for e in events}

    got = await stub(api).GetPlan(
        plan_pb.GetPlanRequest(name=created.name), metadata=api.md(Role.SUPERVISOR)
    )
    result = got.result
    assert got.state == plan_pb.PLAN_STATE_SUCCEEDED and got.HasField("end_time")
    assert result.total_cost > 0 and result.optimality_gap >= 0
    assert result.start_date == "2024-03-04" and result.interval.seconds == 900
    assert result.iterations and result.iterations[-1].HasField("lowest_service_level")
    assert len(result.coverage) == 2 * 96  # two groups, 96 quarter hours
    row = next(r for r in result.coverage if r.interval_start == "2024-03-04T09:00")
    assert row.required > 0 and row.scheduled >= row.required
    assert row.HasField("simulated_service_level")
    assert not next(r for r in result.coverage if r.interval_start.endswith("T03:00")).HasField(
        "simulated_service_level"
    )
    assert len(result.roster) == result.shifts > 0
    assert any(entry.breaks for entry in result.roster)
    assert all(entry.day == "2024-03-04" for entry in result.roster)

    basic = await stub(api).GetPlan(
        plan_pb.GetPlanRequest(name=created.name, view=plan_pb.PLAN_VIEW_BASIC),
        metadata=api.md(Role.PLANNER),
    )
    assert not basic.HasField("result")
    listed = await stub(api).ListPlans(
        plan_pb.ListPlansRequest(parent=T1), metadata=api.md(Role.ADMIN)
    )
    assert [p.name for p in listed.plans] == [created.name]
    # The same request id returns the same plan; with another spec it is refused.
    again = await create(api, request_id="morning-1")
    assert again.name == created.name and again.state == plan_pb.PLAN_STATE_SUCCEEDED
    code, _ = await status(create(api, NO_TECH_SHIFT, request_id="morning-1"))
    assert code == grpc.StatusCode.ALREADY_EXISTS


async def test_an_unmeetable_demand_ends_failed_naming_intervals_and_reason(api: Api) -> None:
    created = await create(api, NO_TECH_SHIFT)
    events = await asyncio.wait_for(watch(api, created.name), 60)
    last = events[-1]
    assert last.state == plan_pb.PLAN_STATE_FAILED
    assert last.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert last.error.message.startswith("FAILED_PRECONDITION: ")
    assert "'tech'" in last.error.reason and "no shift template" in last.error.reason
    assert "day 1 (mon) 09:00" in last.error.intervals
    got = await stub(api).GetPlan(
        plan_pb.GetPlanRequest(name=created.name), metadata=api.md(Role.PLANNER)
    )
    assert got.state == plan_pb.PLAN_STATE_FAILED and not got.HasField("result")
    assert got.error.message == last.error.message


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        (SPEC.replace("days: 1", "days: 99"), "plan_spec:5: days:"),
        (
            SPEC.replace("length: 4h, cost_per_hour: 18", "length: 4h, cost: 18"),
            "plan_spec:14: templates[0].cost:",
        ),
        (SPEC.replace("groups:", "groups: [oops"), "plan_spec:"),
        (SPEC.replace("forecast.csv}", "/etc/passwd}"), "plan_spec:6: demand.forecast:"),
        ("", "plan_spec:"),
    ],
)
async def test_a_bad_plan_spec_is_invalid_argument_naming_line_and_field(
    api: Api, spec: str, where: str
) -> None:
    code, details = await status(create(api, spec))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(where), details
    listed = await stub(api).ListPlans(
        plan_pb.ListPlansRequest(parent=T1), metadata=api.md(Role.PLANNER)
    )
    assert not listed.plans


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.PLATFORM, Role.AGENT])
async def test_only_planners_and_admins_create_plans(api: Api, role: Role) -> None:
    code, _ = await status(create(api, role=role))
    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_another_tenants_plans_are_permission_denied(api: Api) -> None:
    foreign = plan_pb.CreatePlanRequest(parent="tenants/t2", plan_spec=SPEC, files=[FORECAST])
    code, details = await status(stub(api).CreatePlan(foreign, metadata=api.md(Role.PLANNER)))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "t2" in details
    get = plan_pb.GetPlanRequest(name="tenants/t2/plans/abc")
    code, _ = await status(stub(api).GetPlan(get, metadata=api.md(Role.PLANNER)))
    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_an_unknown_plan_is_not_found(api: Api) -> None:
    name = "tenants/t1/plans/0123456789abcdef"
    code, details = await status(
        stub(api).GetPlan(plan_pb.GetPlanRequest(name=name), metadata=api.md(Role.PLANNER))
    )
    assert code == grpc.StatusCode.NOT_FOUND and "another replica" in details
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await watch(api, name)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_full_replica_is_resource_exhausted(api: Api) -> None:
    api.service.planner.max_jobs = 0
    code, details = await status(create(api))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "retry" in details


async def test_plans_beyond_the_workers_queue_and_stopping_aborts_them() -> None:
    release = threading.Event()

    def blocked(request: PlanRequest, progress: ProgressCallback) -> PlanResult:
        while not release.wait(0.01):
            progress(PlanProgress("cover", 1, 0.5))
        raise AssertionError("released")

    planner = Planner(max_jobs=2, workers=1, plan_fn=blocked)
    tenant = TenantId("t1")
    files = {"forecast.csv": FORECAST.content}
    first = await planner.create(tenant, SPEC, files)
    second = await planner.create(tenant, SPEC, files)
    with pytest.raises(ResourceExhausted):
        await planner.create(tenant, SPEC, files)
    async for snapshot in planner.watch(tenant, first.plan_id):
        if snapshot.progress.stage == "cover":
            break
    assert planner.get(tenant, second.plan_id).state is PlanState.QUEUED
    await planner.close()
    release.set()
    for plan_id in (first.plan_id, second.plan_id):
        ended = planner.get(tenant, plan_id)
        assert ended.state is PlanState.FAILED
        assert ended.error is not None and ended.error.status == "ABORTED"
