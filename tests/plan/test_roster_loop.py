"""Rostering named agents, simulation in the loop, the Python API and the command."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from simulations.planning.api import PlanProgress, plan
from simulations.planning.cli import main
from simulations.planning.config import parse_plan
from tests.plan.plans import plan_yaml, write_forecast

WEEK_TEMPLATES = (
    "  - {name: day, skills: [care], starts: ['08:00'], length: 8h, cost_per_hour: 10}\n"
    "  - {name: late, skills: [care], starts: ['20:00'], length: 8h, cost_per_hour: 12}\n"
)


def test_roster_gives_every_shift_a_named_agent_within_their_rules(tmp_path: Path) -> None:
    forecast = write_forecast(tmp_path / "f.csv", per_interval=15.0)
    text = (
        plan_yaml(
            forecast,
            templates=WEEK_TEMPLATES,
            agents="agents: [{group: care, count: 6, skills: [care], max_days: 2,"
            " max_hours: 16}]\n",
        )
        .replace("days: 1", "days: 3")
        .replace("loop: {", "loop: {enabled: false, ")
    )
    result = plan(parse_plan(text))
    assert not result.roster.unfilled
    assigned = result.roster.assignments
    assert len(assigned) == sum(s.count for s in result.cover.shifts)
    for agent in {a.agent_id for a in assigned}:
        mine = sorted((a for a in assigned if a.agent_id == agent), key=lambda a: a.start_s)
        assert len(mine) <= 2 and result.roster.hours(agent) <= 16
        for first, second in itertools.pairwise(mine):
            assert second.start_s - first.end_s >= 11 * 3600  # minimum rest


def test_plan_reports_each_iteration_and_confirms_by_simulation(tmp_path: Path) -> None:
    forecast = write_forecast(tmp_path / "f.csv", per_interval=25.0)
    seen: list[PlanProgress] = []
    result = plan(parse_plan(plan_yaml(forecast)), seen.append)
    assert 1 <= len(result.iterations) <= 2
    assert result.check is not None
    assert seen[0].stage == "forecast" and seen[-1].stage == "done"
    assert all(0.0 <= p.fraction <= 1.0 for p in seen)
    raised = (result.requirements.agents["care"] - result.base.agents["care"]).sum()
    assert raised == sum(it.added for it in result.iterations[:-1])


def test_same_seed_same_plan(tmp_path: Path) -> None:
    forecast = write_forecast(tmp_path / "f.csv", per_interval=25.0)
    first = plan(parse_plan(plan_yaml(forecast)))
    again = plan(parse_plan(plan_yaml(forecast)))
    assert [i.misses for i in first.iterations] == [i.misses for i in again.iterations]
    assert first.cover.cost == again.cover.cost


def test_command_writes_json_csv_and_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    forecast = write_forecast(tmp_path / "f.csv")
    path = tmp_path / "plan.yaml"
    path.write_text(plan_yaml(forecast))
    files = [tmp_path / n for n in ("schedule.csv", "coverage.csv", "report.html")]
    code = main(
        [
            str(path),
            "--json",
            "--schedule",
            str(files[0]),
            "--coverage",
            str(files[1]),
            "--report",
            str(files[2]),
        ]
    )
    assert code in (0, 1)
    document = json.loads(capsys.readouterr().out)
    assert document["plan"] == "tiny" and document["iterations"]
    assert files[0].read_text().startswith("agent_id,skills,shift,start,end,breaks,paid_hours")
    assert "required_final" in files[1].read_text().splitlines()[0]
    assert "<img" in files[2].read_text()
