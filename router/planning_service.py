"""The PlanningService servicer and its protobuf conversions.

The servicer checks names and tenants, calls ``router.planning.Planner`` and converts its
snapshots; the conversions below turn a ``PlanResult`` into the API's summary (figures, the
loop's rounds, coverage rows and the roster), with times as the plan's local date-times.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import datetime, time, timedelta

from router.convert import duration
from router.errors import InvalidArgument
from router.pb.omniroute.v1 import planning_service_pb2 as plan_pb
from router.pb.omniroute.v1 import planning_service_pb2_grpc as plan_grpc
from router.planning import Planner, PlanSnapshot, PlanState
from router.service import Ctx, named, tenant_of, translate_errors, translate_stream_errors
from simulations.planning.api import PlanResult

_STATE = {
    PlanState.QUEUED: plan_pb.PLAN_STATE_QUEUED,
    PlanState.RUNNING: plan_pb.PLAN_STATE_RUNNING,
    PlanState.SUCCEEDED: plan_pb.PLAN_STATE_SUCCEEDED,
    PlanState.FAILED: plan_pb.PLAN_STATE_FAILED,
}
#: gRPC status numbers of the failures a plan can end with.
_CODE = {
    "INVALID_ARGUMENT": 3,
    "NOT_FOUND": 5,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "INTERNAL": 13,
}


class PlanningService(plan_grpc.PlanningServiceServicer):
    """Planner API: plans as long-running jobs of this replica."""

    def __init__(self, planner: Planner) -> None:
        self._planner = planner

    @translate_errors
    async def CreatePlan(self, request: plan_pb.CreatePlanRequest, context: Ctx) -> plan_pb.Plan:
        tenant = tenant_of("parent", request.parent)
        if len(request.request_id) > 128 or not request.request_id.isprintable():
            raise InvalidArgument("request_id", "at most 128 printable characters")
        files: dict[str, str] = {}
        for i, attached in enumerate(request.files):
            if attached.name in files:
                raise InvalidArgument(f"files[{i}].name", f"{attached.name!r} given twice")
            files[attached.name] = attached.content
        snapshot = await self._planner.create(tenant, request.plan_spec, files, request.request_id)
        return plan_to_pb(snapshot, full=False)

    @translate_errors
    async def GetPlan(self, request: plan_pb.GetPlanRequest, context: Ctx) -> plan_pb.Plan:
        tenant, plan_id = named("name", request.name, "plans")
        full = request.view != plan_pb.PLAN_VIEW_BASIC
        return plan_to_pb(self._planner.get(tenant, plan_id), full=full)

    @translate_errors
    async def ListPlans(
        self, request: plan_pb.ListPlansRequest, context: Ctx
    ) -> plan_pb.ListPlansResponse:
        tenant = tenant_of("parent", request.parent)
        plans = [plan_to_pb(s, full=False) for s in self._planner.list(tenant)]
        return plan_pb.ListPlansResponse(plans=plans)

    @translate_stream_errors
    async def WatchPlan(
        self, request: plan_pb.WatchPlanRequest, context: Ctx
    ) -> AsyncIterator[plan_pb.PlanProgress]:
        tenant, plan_id = named("name", request.name, "plans")
        async for snapshot in self._planner.watch(tenant, plan_id):
            yield progress_to_pb(snapshot)


def plan_name(snapshot: PlanSnapshot) -> str:
    """`tenants/{tenant}/plans/{plan}`."""
    return f"tenants/{snapshot.tenant}/plans/{snapshot.plan_id}"


def _error_to_pb(snapshot: PlanSnapshot) -> plan_pb.PlanError | None:
    error = snapshot.error
    if error is None:
        return None
    return plan_pb.PlanError(
        code=_CODE.get(error.status, 2),
        message=error.message,
        reason=error.reason,
        intervals=list(error.intervals),
    )


def plan_to_pb(snapshot: PlanSnapshot, *, full: bool) -> plan_pb.Plan:
    """A snapshot as a Plan; `full` adds the result of a plan that succeeded."""
    step = snapshot.progress
    msg = plan_pb.Plan(
        name=plan_name(snapshot),
        display_name=snapshot.display_name,
        state=_STATE[snapshot.state],
        progress_fraction=step.fraction,
        stage=step.stage,
        iteration=step.iteration,
        progress_message=step.message,
        error=_error_to_pb(snapshot),
        request_id=snapshot.request_id,
    )
    msg.create_time.FromMilliseconds(round(snapshot.create_s * 1000))
    msg.update_time.FromMilliseconds(round(snapshot.update_s * 1000))
    if snapshot.end_s is not None:
        msg.end_time.FromMilliseconds(round(snapshot.end_s * 1000))
    if snapshot.expire_s is not None:
        msg.expire_time.FromMilliseconds(round(snapshot.expire_s * 1000))
    if full and snapshot.result is not None:
        msg.result.CopyFrom(result_to_pb(snapshot.result))
    return msg


def progress_to_pb(snapshot: PlanSnapshot) -> plan_pb.PlanProgress:
    """A snapshot as one message of WatchPlan's stream."""
    step = snapshot.progress
    msg = plan_pb.PlanProgress(
        plan=plan_name(snapshot),
        state=_STATE[snapshot.state],
        stage=step.stage,
        iteration=step.iteration,
        progress_fraction=step.fraction,
        message=step.message,
        error=_error_to_pb(snapshot),
    )
    msg.time.FromMilliseconds(round(snapshot.update_s * 1000))
    return msg


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)


def result_to_pb(result: PlanResult) -> plan_pb.PlanResult:
    """The summary of a plan: figures, rounds, coverage and roster."""
    start = datetime.combine(result.forecast.start, time())

    def local(seconds: float) -> str:
        return (start + timedelta(seconds=seconds)).isoformat(timespec="minutes")

    last = result.iterations[-1]
    assignments = result.roster.assignments
    msg = plan_pb.PlanResult(
        start_date=result.forecast.start.isoformat(),
        days=result.request.days,
        interval=duration(result.request.interval_s),
        total_cost=last.cost,
        optimality_gap=last.gap,
        solver_status=last.status,
        meets_target=result.meets_target,
        target_service_level=result.request.target.service_level,
        shifts=len(assignments),
        paid_hours=sum(a.paid_hours for a in assignments),
        forecast_contacts=round(float(result.forecast.total().sum()), 3),
        unfilled_shifts=sum(copies for _, _, copies in result.roster.unfilled),
        compute_time=duration(result.seconds),
    )
    for it in result.iterations:
        msg.iterations.add(
            index=it.index,
            cost=it.cost,
            optimality_gap=it.gap,
            agents_short=it.agents_short,
            misses=it.misses,
            lowest_service_level=_finite(it.min_service_level),
            agents_added=it.added,
        )
    check, step = result.check, result.request.interval_s
    for group in result.requirements.groups:
        staffed = result.cover.staffed(group)
        for k in range(result.requirements.intervals):
            level = _finite(check.service_level[group][k]) if check is not None else None
            msg.coverage.add(
                interval_start=local(k * step),
                group=group,
                contacts=round(float(result.base.contacts[group][k]), 3),
                required=int(result.requirements.agents[group][k]),
                scheduled=int(staffed[k]),
                simulated_service_level=level,
            )
    for a in sorted(assignments, key=lambda a: (a.start_s, a.agent_id)):
        msg.roster.add(
            agent=a.agent_id,
            day=(result.forecast.start + timedelta(days=a.day)).isoformat(),
            shift=a.shift,
            start=local(a.start_s),
            end=local(a.end_s),
            breaks=[plan_pb.TimeRange(start=local(b), end=local(e)) for b, e in a.breaks],
            skills=sorted(a.skills),
            paid_hours=a.paid_hours,
        )
    return msg
