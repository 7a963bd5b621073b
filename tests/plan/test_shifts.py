"""The covering model: cheapest shifts, breaks inside windows, multi-skill agents counted once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulations.planning.model import (
    BreakRule,
    CsvDemand,
    Penalties,
    PlanRequest,
    ShiftTemplate,
    SkillGroup,
    validate,
)
from simulations.planning.requirements import Requirements
from simulations.planning.shifts import solve_cover

STEP = 1800


def _request(
    templates: tuple[ShiftTemplate, ...], groups: tuple[str, ...] = ("a",), hard: bool = True
) -> PlanRequest:
    return validate(
        PlanRequest(
            "t",
            STEP,
            1,
            None,
            tuple(SkillGroup(g, (g,)) for g in groups),
            templates,
            CsvDemand(Path("-")),
            penalties=Penalties(under=None if hard else 50.0),
        )
    )


def _need(ranges: dict[str, list[tuple[int, int, int]]]) -> Requirements:
    agents = {}
    for group, spans in ranges.items():
        need = np.zeros(48, dtype=np.int64)
        for first, last, count in spans:
            need[first:last] = count
        agents[group] = need
    return Requirements(STEP, agents, {g: a.astype(float) for g, a in agents.items()})


def test_cheapest_shifts_cover_a_flat_requirement_exactly() -> None:
    tpl = ShiftTemplate("day", frozenset({"a"}), (8 * 3600.0,), 8 * 3600.0, cost_per_hour=10.0)
    cover = solve_cover(_request((tpl,)), _need({"a": [(16, 32, 3)]}))
    assert cover.status == "OPTIMAL"
    assert [s.count for s in cover.shifts] == [3]
    assert cover.cost == 240.0 and cover.gap == 0.0


def test_breaks_fall_inside_their_window_and_are_staggered_to_keep_coverage() -> None:
    rule = BreakRule(1800, 2 * 3600.0, 4 * 3600.0)
    tpl = ShiftTemplate("day", frozenset({"a"}), (8 * 3600.0,), 8 * 3600.0, 10.0, (rule,))
    cover = solve_cover(_request((tpl,)), _need({"a": [(16, 32, 2)]}))
    (shift,) = cover.shifts
    assert shift.count == 3  # two on the phones at every moment needs a third for the breaks
    starts = [copy[0] for copy in shift.break_starts]
    assert all(shift.start + 4 <= b <= shift.start + 8 for b in starts)
    assert (cover.staffed("a")[16:32] >= 2).all()
    assert cover.cost == 3 * 7.5 * 10  # unpaid 30-minute break


def test_an_agent_with_two_skills_counts_once_toward_both_groups() -> None:
    tpl = ShiftTemplate("blend", frozenset({"a", "b"}), (8 * 3600.0,), 4 * 3600.0, 10.0)
    cover = solve_cover(
        _request((tpl,), ("a", "b")), _need({"a": [(16, 24, 1)], "b": [(16, 24, 1)]})
    )
    assert sum(s.count for s in cover.shifts) == 2


def test_soft_coverage_reports_the_agents_missing_where_no_template_is_on_duty() -> None:
    tpl = ShiftTemplate("day", frozenset({"a"}), (8 * 3600.0,), 4 * 3600.0, 10.0)
    cover = solve_cover(_request((tpl,), hard=False), _need({"a": [(16, 24, 1), (30, 32, 1)]}))
    assert cover.under["a"][30:32].tolist() == [1, 1]
    assert cover.under["a"][16:24].sum() == 0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 4), min_size=20, max_size=20))
def test_hard_coverage_always_meets_every_interval(counts: list[int]) -> None:
    starts = tuple(float(h * 3600) for h in range(6, 16))
    templates = (
        ShiftTemplate("short", frozenset({"a"}), starts, 4 * 3600.0, 11.0),
        ShiftTemplate(
            "long",
            frozenset({"a"}),
            starts,
            8 * 3600.0,
            10.0,
            (BreakRule(1800, 3 * 3600.0, 4 * 3600.0),),
        ),
    )
    need = np.zeros(48, dtype=np.int64)
    need[14:34] = counts
    req = Requirements(STEP, {"a": need}, {"a": need.astype(float)})
    cover = solve_cover(_request(templates), req)
    assert (cover.staffed("a") >= need).all()
    assert cover.objective >= cover.bound - 1e-6
