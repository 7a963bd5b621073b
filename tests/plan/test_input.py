"""Bad input: a clear message naming the line and field (or the intervals and the reason)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulations.planning.api import plan
from simulations.planning.cli import main
from simulations.planning.config import load_plan, parse_plan
from simulations.planning.model import Infeasible
from simulations.yamlfields import ScenarioError
from tests.plan.plans import plan_yaml, write_forecast


@pytest.fixture
def forecast(tmp_path: Path) -> Path:
    return write_forecast(tmp_path / "forecast.csv")


def test_a_template_longer_than_a_day_is_refused_naming_its_length(forecast: Path) -> None:
    text = plan_yaml(
        forecast, templates="  - {name: x, skills: [care], starts: ['08:00'], length: 25h}\n"
    )
    with pytest.raises(ScenarioError) as error:
        parse_plan(text, "plan.yaml")
    assert "templates[0].length" in str(error.value) and "24h" in str(error.value)
    assert str(error.value).startswith("plan.yaml:")


def test_a_break_outside_its_shift_is_refused_naming_the_window(forecast: Path) -> None:
    text = plan_yaml(
        forecast,
        templates=(
            "  - {name: x, skills: [care], starts: ['08:00'], length: 4h,\n"
            "     breaks: [{length: 30m, window: [3h, 4h]}]}\n"
        ),
    )
    with pytest.raises(ScenarioError, match=r"templates\[0\]\.breaks\[0\]\.window: break outside"):
        parse_plan(text, "plan.yaml")


def test_an_unknown_skill_is_refused_with_its_line(forecast: Path) -> None:
    text = plan_yaml(forecast, agents="agents: [{id: ann, skills: [plumbing]}]\n")
    with pytest.raises(ScenarioError) as error:
        parse_plan(text, "plan.yaml")
    message = str(error.value)
    assert "agents[0].skills" in message and "'plumbing'" in message and "care" in message
    assert (
        error.value.line == text.splitlines().index("agents: [{id: ann, skills: [plumbing]}]") + 1
    )


def test_demand_beyond_the_agents_names_the_intervals_and_the_reason(
    forecast: Path, tmp_path: Path
) -> None:
    busy = write_forecast(tmp_path / "busy.csv", per_interval=200.0)
    request = parse_plan(
        plan_yaml(busy, agents="agents: [{group: care, count: 3, skills: [care]}]\n")
    )
    with pytest.raises(Infeasible) as error:
        plan(request)
    assert "only 3 agents hold the skill" in str(error.value)
    assert "day 1 (mon) 08:00" in str(error.value)


def test_the_command_prints_one_error_line_and_exits_2(
    forecast: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(
        plan_yaml(
            forecast, templates="  - {name: x, skills: [care], starts: ['08:00'], length: 30h}\n"
        )
    )
    assert main([str(path)]) == 2
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert "templates[0].length" in out.out + out.err


def test_a_missing_plan_file_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_plan(tmp_path / "nope.yaml")
