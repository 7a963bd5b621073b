"""Shift plans as long-running jobs of one replica: accept, run, report progress, keep.

``Planner`` checks a plan spec (YAML, as ``omniroute plan`` reads it, with the files it
names), runs ``simulations.planning.api.plan`` in a worker thread (CP-SAT and simulation are
CPU-bound and would stall the event loop), publishes each progress step to any number of
watchers, and keeps the outcome in memory for ``keep_s`` after it ends.

Everything lives in this replica's memory: another replica knows nothing of the plan, and a
restart forgets it. A `request_id` maps to the plan made for it while the plan is kept, so a
retry returns it and, once it is gone, plans again (same spec and seeds, same schedule).
At most ``max_jobs`` plans are unfinished at once (ResourceExhausted beyond) and ``workers``
of them run at a time; the rest wait QUEUED. Only files given with the request are read, or
the server's bank log (``log: bank``): a spec cannot name another path of the server.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog
import yaml

from router.domain import TenantId
from router.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    RoutingError,
)
from router.ids import new_id
from simulations.planning.api import PlanProgress, PlanResult, ProgressCallback, plan
from simulations.planning.config import parse_plan
from simulations.planning.model import Infeasible, PlanRequest
from simulations.yamlfields import ScenarioError, compose

log = structlog.get_logger(__name__)

SOURCE = "plan_spec"  # how errors name the spec: "plan_spec:12: templates[0].length: ..."
MAX_FILES = 8
_FILE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
PlanFunction = Callable[[PlanRequest, ProgressCallback], PlanResult]


class PlanState(StrEnum):
    """Where a plan is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PlanFailure:
    """Why a plan failed: a status name (``FAILED_PRECONDITION``), a message, and for an
    unmeetable demand the reason and the intervals at fault."""

    status: str
    message: str
    reason: str = ""
    intervals: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PlanSnapshot:
    """A plan as it is now; each change makes a new one with a higher `version`."""

    tenant: TenantId
    plan_id: str
    display_name: str
    request_id: str
    state: PlanState
    create_s: float
    update_s: float
    progress: PlanProgress
    version: int = 0
    end_s: float | None = None
    expire_s: float | None = None
    error: PlanFailure | None = None
    result: PlanResult | None = None

    @property
    def is_done(self) -> bool:
        """Has the plan ended, one way or the other?"""
        return self.state in (PlanState.SUCCEEDED, PlanState.FAILED)


@dataclass
class _Job:
    """A plan's mutable holder: the latest snapshot and an event set on each change."""

    snapshot: PlanSnapshot
    fingerprint: str
    folder: Path  # the request's files, removed when the plan ends
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class _Stopped(Exception):
    """Raised inside the worker thread, at its next progress step, when the replica stops."""


def _failure(exc: BaseException) -> PlanFailure:
    """The failure of a plan that raised `exc`."""
    if isinstance(exc, Infeasible):
        return PlanFailure(
            "FAILED_PRECONDITION", f"FAILED_PRECONDITION: {exc}", exc.reason, exc.intervals
        )
    status = {
        InvalidArgument: "INVALID_ARGUMENT",
        NotFound: "NOT_FOUND",
        Conflict: "FAILED_PRECONDITION",
    }
    for kind, name in status.items():
        if isinstance(exc, kind):
            return PlanFailure(name, f"{name}: {exc}", str(exc))
    if isinstance(exc, (_Stopped, asyncio.CancelledError)):
        return PlanFailure("ABORTED", "ABORTED: the replica stopped before the plan ended")
    return PlanFailure("INTERNAL", "INTERNAL: internal error (logged)")


def _check_demand_paths(spec: str, files: Mapping[str, str]) -> None:
    """ScenarioError unless the demand names an attached file or the bank log."""
    try:
        root = compose(spec, SOURCE)
    except ScenarioError:
        return  # parse_plan reports it with the rest
    top = dict(_pairs(root.node))
    demand = top.get("demand")
    for key, node in _pairs(demand) if demand is not None else ():
        if key not in ("forecast", "log") or not isinstance(node, yaml.ScalarNode):
            continue
        value = str(node.value)
        if (key == "log" and value == "bank") or value in files:
            continue
        raise ScenarioError(
            SOURCE,
            node.start_mark.line + 1,
            f"demand.{key}",
            f"{value[:80]!r} is not one of the files sent with the plan "
            f"({', '.join(sorted(files)) or 'none'}); attach it in `files`",
        )


def _pairs(node: yaml.Node) -> list[tuple[str, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        return []
    return [(str(k.value), v) for k, v in node.value if isinstance(k, yaml.ScalarNode)]


def prepare(spec: str, files: Mapping[str, str]) -> tuple[PlanRequest, Path]:
    """Write `files` to a fresh folder and check `spec` against it: the request and the
    folder (the caller removes it). InvalidArgument names the line and field at fault."""
    if not spec.strip():
        raise InvalidArgument("plan_spec", "required: the YAML text of a plan file")
    if len(files) > MAX_FILES:
        raise InvalidArgument("files", f"at most {MAX_FILES} files")
    for name in files:
        if not _FILE_NAME.match(name):
            raise InvalidArgument("files.name", f"{name[:80]!r}: 1-128 of [A-Za-z0-9._-]")
    try:
        _check_demand_paths(spec, files)
    except ScenarioError as exc:
        raise InvalidArgument(f"{exc.source}:{exc.line}: {exc.field}", exc.problem) from None
    folder = Path(tempfile.mkdtemp(prefix="omniroute-plan-"))
    try:
        for name, content in files.items():
            (folder / name).write_text(content, encoding="utf-8")
        return parse_plan(spec, SOURCE, folder), folder
    except ScenarioError as exc:  # as plain InvalidArgument, which the gRPC edge maps
        shutil.rmtree(folder, ignore_errors=True)
        raise InvalidArgument(f"{exc.source}:{exc.line}: {exc.field}", exc.problem) from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


class Planner:
    """This replica's plans: create, read, watch; see the module docstring."""

    def __init__(
        self,
        *,
        max_jobs: int = 4,
        workers: int = 1,
        keep_s: float = 3600.0,
        max_kept: int = 200,
        plan_fn: PlanFunction = plan,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_jobs = max_jobs
        self.keep_s = keep_s
        self.max_kept = max_kept
        self._plan_fn = plan_fn
        self._clock = clock
        self._slots = asyncio.Semaphore(workers)
        self._jobs: dict[tuple[TenantId, str], _Job] = {}
        self._by_request: dict[tuple[TenantId, str], str] = {}
        self._stopping = threading.Event()

    async def create(
        self, tenant: TenantId, spec: str, files: Mapping[str, str], request_id: str = ""
    ) -> PlanSnapshot:
        """Accept a plan and start it; with a known `request_id`, the plan made for it."""
        self._forget_expired()
        fingerprint = _fingerprint(spec, files)
        if request_id and (tenant, request_id) in self._by_request:
            job = self._jobs[(tenant, self._by_request[(tenant, request_id)])]
            if job.fingerprint != fingerprint:
                raise AlreadyExists(
                    f"request_id {request_id!r} was used for another plan spec or files"
                )
            return job.snapshot
        if self._stopping.is_set():
            raise ResourceExhausted("this replica is stopping; create the plan on another")
        request, folder = await asyncio.to_thread(prepare, spec, files)
        if sum(not j.snapshot.is_done for j in self._jobs.values()) >= self.max_jobs:
            shutil.rmtree(folder, ignore_errors=True)
            raise ResourceExhausted(
                f"this replica already runs {self.max_jobs} plans; retry when one ends"
            )
        now = self._clock()
        snapshot = PlanSnapshot(
            tenant,
            new_id(),
            request.name,
            request_id,
            PlanState.QUEUED,
            now,
            now,
            PlanProgress("queued", 0, 0.0, "waiting for a worker"),
        )
        job = _Job(snapshot, fingerprint, folder)
        self._jobs[(tenant, snapshot.plan_id)] = job
        if request_id:
            self._by_request[(tenant, request_id)] = snapshot.plan_id
        job.task = asyncio.create_task(self._run(job, request))
        log.info("plan_created", plan_id=snapshot.plan_id, display_name=request.name)
        return snapshot

    def get(self, tenant: TenantId, plan_id: str) -> PlanSnapshot:
        """The plan as it is now, or NotFound."""
        return self._job(tenant, plan_id).snapshot

    def list(self, tenant: TenantId) -> list[PlanSnapshot]:
        """The tenant's plans kept here, newest first."""
        self._forget_expired()
        plans = [j.snapshot for (t, _), j in self._jobs.items() if t == tenant]
        return sorted(plans, key=lambda s: (s.create_s, s.plan_id), reverse=True)

    async def watch(self, tenant: TenantId, plan_id: str) -> AsyncIterator[PlanSnapshot]:
        """The plan now, then each change until it ends (a slow reader gets the latest)."""
        job = self._job(tenant, plan_id)
        seen = -1
        while True:
            snapshot, changed = job.snapshot, job.changed
            if snapshot.version != seen:
                seen = snapshot.version
                yield snapshot
            if snapshot.is_done:
                return
            await changed.wait()

    async def close(self, wait_s: float = 10.0) -> None:
        """Stop: queued plans fail at once, running ones at their next progress step."""
        self._stopping.set()
        tasks = [j.task for j in self._jobs.values() if j.task is not None and not j.task.done()]
        for job in self._jobs.values():
            if job.snapshot.state is PlanState.QUEUED and job.task is not None:
                job.task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=wait_s)
        for job in self._jobs.values():
            if job.snapshot.state is PlanState.QUEUED:  # cancelled before it ever ran
                shutil.rmtree(job.folder, ignore_errors=True)
                self._finish(job, PlanState.FAILED, error=_failure(_Stopped()))

    def _job(self, tenant: TenantId, plan_id: str) -> _Job:
        self._forget_expired()
        job = self._jobs.get((tenant, plan_id))
        if job is None:
            raise NotFound(
                f"plan tenants/{tenant}/plans/{plan_id} is not on this replica (unknown, "
                "expired, or created on another replica)"
            )
        return job

    def _publish(self, job: _Job, **changes: Any) -> None:
        """Replace the job's snapshot and wake its watchers (on the event loop only)."""
        old = job.snapshot
        job.snapshot = replace(old, version=old.version + 1, update_s=self._clock(), **changes)
        woken, job.changed = job.changed, asyncio.Event()
        woken.set()

    def _step(self, job: _Job, step: PlanProgress) -> None:
        if job.snapshot.is_done:
            return
        fraction = max(job.snapshot.progress.fraction, step.fraction)  # never falls
        message = step.message or job.snapshot.progress.message
        self._publish(job, progress=replace(step, fraction=fraction, message=message))

    async def _run(self, job: _Job, request: PlanRequest) -> None:
        loop = asyncio.get_running_loop()

        def progress(step: PlanProgress) -> None:  # in the worker thread
            if self._stopping.is_set():
                raise _Stopped
            loop.call_soon_threadsafe(self._step, job, step)

        began = time.perf_counter()
        try:
            async with self._slots:
                self._publish(
                    job,
                    state=PlanState.RUNNING,
                    progress=PlanProgress("forecast", 0, 0.0, "starting"),
                )
                result = await asyncio.to_thread(self._plan_fn, request, progress)
            self._finish(job, PlanState.SUCCEEDED, result=result)
        except (RoutingError, _Stopped, asyncio.CancelledError) as exc:
            self._finish(job, PlanState.FAILED, error=_failure(exc))
        except Exception as exc:  # one bad plan must not take the replica down
            log.exception("plan_crashed", plan_id=job.snapshot.plan_id)
            self._finish(job, PlanState.FAILED, error=_failure(exc))
        finally:
            shutil.rmtree(job.folder, ignore_errors=True)
            log.info(
                "plan_finished",
                plan_id=job.snapshot.plan_id,
                state=job.snapshot.state.value,
                seconds=round(time.perf_counter() - began, 3),
            )

    def _finish(
        self,
        job: _Job,
        state: PlanState,
        *,
        result: PlanResult | None = None,
        error: PlanFailure | None = None,
    ) -> None:
        now = self._clock()
        last = job.snapshot.progress
        step = (
            PlanProgress("done", last.iteration, 1.0, "done")
            if state is PlanState.SUCCEEDED
            else replace(last, stage="failed", message=error.message if error else "")
        )
        self._publish(
            job,
            state=state,
            progress=step,
            end_s=now,
            expire_s=now + self.keep_s,
            result=result,
            error=error,
        )

    def _forget_expired(self) -> None:
        """Drop ended plans past their expiry, and the oldest ended ones beyond `max_kept`."""
        now = self._clock()
        ended = sorted(
            (j.snapshot.end_s or 0.0, key) for key, j in self._jobs.items() if j.snapshot.is_done
        )
        excess = len(self._jobs) - self.max_kept
        for rank, (_, key) in enumerate(ended):
            expire = self._jobs[key].snapshot.expire_s
            if rank < excess or (expire is not None and expire <= now):
                self._drop(key)

    def _drop(self, key: tuple[TenantId, str]) -> None:
        job = self._jobs.pop(key)
        if job.snapshot.request_id:
            self._by_request.pop((key[0], job.snapshot.request_id), None)


def _fingerprint(spec: str, files: Mapping[str, str]) -> str:
    """What a request_id is bound to: the spec and the files, by content."""
    h = hashlib.sha256(spec.encode())
    for name in sorted(files):
        h.update(b"\0" + name.encode() + b"\0" + files[name].encode())
    return h.hexdigest()
