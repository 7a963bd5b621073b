"""Scenario files: the shipped examples load, bad ones name the line and field, the CLI runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router.domain import Channel
from simulations.cli import EXAMPLES, main
from simulations.headline import run_headline, silo_plan
from simulations.plan import History
from simulations.scenario import load_scenario, parse_scenario
from simulations.yamlfields import ScenarioError

GOOD = """\
name: tiny
seed: 3
replications: 2
horizon: 1h
interval: 15m
streams:
  - issue: billing
    channel: voice
    per_hour: 60
    handle: {dist: exponential, mean: 2m}
    patience: {dist: exponential, mean: 1m}
agents:
  - group: phones
    count: 3
    skills: {billing: 2}
    capacity: {voice: 1}
"""


SHIPPED = ("mmc_erlang_check.yaml", "omnichannel_day.yaml", "headline.yaml")


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_example_loads(name: str) -> None:
    scenario = load_scenario(EXAMPLES / name)
    assert scenario.plan.agents and scenario.plan.streams


def test_good_scenario_becomes_a_plan() -> None:
    scenario = parse_scenario(GOOD)
    assert scenario.replications == 2 and scenario.plan.horizon_s == 3600.0
    assert len(scenario.plan.agents) == 3
    assert scenario.plan.streams[0].rates_per_s == (60 / 3600,)


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("    per_hour: 60", "    per_hour: lots", "tiny.yaml:9: streams[0].per_hour: expected"),
        ("mean: 2m}", "mean: 2 fortnights}", "tiny.yaml:10: streams[0].handle.mean: expected"),
        ("    channel: voice", "    channel: pigeon", "tiny.yaml:8: streams[0].channel: must"),
        (
            "    count: 3",
            "    count: 3\n    colour: red",
            "tiny.yaml:15: agents[0].colour: unknown",
        ),
        (
            "    skills: {billing: 2}",
            "    skills: {billing: 7}",
            "tiny.yaml:15: agents[0].skills.billing: must be between 1 and 5",
        ),
        ("horizon: 1h\n", "", "tiny.yaml:1: (document): missing field 'horizon'"),
        (
            "    skills: {billing: 2}",
            "    skills: {sales: 2}",
            "tiny.yaml:7: streams[0]: no agent group can take 'billing' on voice",
        ),
        ("seed: 3", "seed: [3", "tiny.yaml:"),
    ],
)
def test_bad_scenario_names_line_and_field(old: str, new: str, where: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(GOOD.replace(old, new), "tiny.yaml")
    assert str(caught.value).startswith(where), str(caught.value)


def test_bad_rule_reports_the_cores_field_with_the_line() -> None:
    text = GOOD + (
        "rules:\n  - issue: billing\n    skills: {billing: 2}\n    steps:\n"
        "      - {after: 30s, skills: {billing: 2}}\n"
    )
    with pytest.raises(
        ScenarioError, match=r"tiny.yaml:21: rules\[0\]\.steps\[0\]: can never apply"
    ):
        parse_scenario(text, "tiny.yaml")


def test_cli_prints_json_and_writes_csv_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(GOOD)
    csv_path, html_path = tmp_path / "out.csv", tmp_path / "out.html"
    status = main(
        [
            str(scenario),
            "--json",
            "--csv",
            str(csv_path),
            "--report",
            str(html_path),
            "--replications",
            "3",
            "--seed",
            "5",
        ]
    )
    assert status == 0
    data = json.loads(capsys.readouterr().out)
    assert data["replications"] == 3 and data["seeds"] == [5000, 5001, 5002]
    assert 0 <= data["total"]["service_level"]["mean"] <= 1
    assert data["total"]["service_level"]["ci95"] > 0
    assert csv_path.read_text().startswith("interval,start_s,issue,channel,offered")
    assert html_path.read_text().count("data:image/png;base64") == 4


def test_cli_reports_a_bad_scenario_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(GOOD.replace("count: 3", "count: -1"))
    assert main([str(scenario)]) == 2
    assert "bad.yaml:14: agents[0].count" in capsys.readouterr().out


def test_silo_plan_splits_every_group_by_channel_workload() -> None:
    scenario = load_scenario(EXAMPLES / "headline.yaml")
    silos = silo_plan(scenario.plan)
    assert len(silos.agents) == len(scenario.plan.agents)
    assert all(len(a.capacity) == 1 for a in silos.agents)
    assert silos.history is History.PER_CHANNEL
    voice = sum(1 for a in silos.agents if Channel.VOICE in a.capacity)
    assert voice > len(silos.agents) / 3  # voice carries the most work


def test_headline_runs_both_designs_on_the_same_customers() -> None:
    scenario = load_scenario(EXAMPLES / "headline.yaml")
    from dataclasses import replace

    small = replace(scenario, replications=2, plan=replace(scenario.plan, horizon_s=3600.0))
    result = run_headline(small, search=False)
    first_silo = result.silos.runs[0].first_contacts
    assert first_silo == result.omni.runs[0].first_contacts  # common random numbers
    assert len(result.rows()) > 5


def test_a_step_that_raises_a_requirement_is_refused() -> None:
    text = GOOD + (
        "rules:\n  - issue: billing\n    skills: {billing: 1}\n    steps:\n"
        "      - {after: 30s, skills: {billing: 3}}\n"
    )
    with pytest.raises(
        ScenarioError, match=r"tiny.yaml:21: rules\[0\]\.steps\[0\]: skills.billing"
    ):
        parse_scenario(text, "tiny.yaml")
