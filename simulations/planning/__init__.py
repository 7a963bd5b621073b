"""Shift planning: forecast, Erlang requirements, CP-SAT shift covering and rostering, and
simulation in the loop. ``plan(request, progress) -> PlanResult`` is the entry point."""

from simulations.planning.api import Iteration, PlanProgress, PlanResult, ProgressCallback, plan
from simulations.planning.config import load_plan, parse_plan
from simulations.planning.model import Infeasible, PlanRequest

__all__ = [
    "Infeasible",
    "Iteration",
    "PlanProgress",
    "PlanRequest",
    "PlanResult",
    "ProgressCallback",
    "load_plan",
    "parse_plan",
    "plan",
]
