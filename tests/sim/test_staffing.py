"""`omniroute staff`: one interval, a forecast file, JSON, and bad input with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulations.cli_staff import main
from simulations.staffing import ForecastError, ForecastRow, pool, read_forecast

EXAMPLE = Path(__file__).resolve().parents[2] / "simulations" / "examples" / "forecast.csv"


def test_one_interval_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--rate-per-hour", "200", "--aht", "180", "--target", "20", "--sl", "0.8"])
    assert code == 0
    out = capsys.readouterr().out
    assert "required" in out
    assert "14" in out  # 10 Erlangs at 80/20: the textbook 14 agents


def test_one_interval_as_json_with_patience_and_shrinkage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--rate-per-hour", "200", "--aht", "180", "--patience", "120", "--shrinkage", "0.25"]
    assert main([*argv, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    (interval,) = document["intervals"]
    assert interval["model"] == "erlang_a"
    assert interval["agents_scheduled"] >= interval["agents_required"] / 0.75
    assert 0 < interval["abandon_rate"] < 0.1


def test_forecast_file_is_staffed_per_row_and_pooled(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--forecast", str(EXAMPLE), "--json"]) == 0
    separate = json.loads(capsys.readouterr().out)
    assert len(separate["intervals"]) == 6
    assert main(["--forecast", str(EXAMPLE), "--json", "--pooled"]) == 0
    pooled = json.loads(capsys.readouterr().out)
    assert len(pooled["intervals"]) == 3
    # Blending issues into one pool never needs more agents than separate pools.
    assert pooled["agent_hours_scheduled"] <= separate["agent_hours_scheduled"]


def test_pooling_weights_handle_time_by_contacts() -> None:
    rows = [ForecastRow("09:00", "a", 30, 100, 60), ForecastRow("09:00", "b", 10, 300, 120)]
    (merged,) = pool(rows)
    assert merged.contacts == 40
    assert merged.aht_s == pytest.approx(150)
    assert merged.patience_s == pytest.approx(40 / (30 / 60 + 10 / 120))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "forecast.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_cell_names_line_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path, "interval_start,contacts,aht_s\n09:00,10,180\n09:15,12,soon\n09:30,9,180\n"
    )
    assert main(["--forecast", str(path)]) == 2
    err = capsys.readouterr().err
    assert "line 3" in err
    assert "aht_s" in err
    assert "Traceback" not in err


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "interval_start,calls,aht_s\n09:00,10,180\n")
    with pytest.raises(ForecastError) as caught:
        read_forecast(path)
    assert caught.value.field == "contacts"
    assert "line 1" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "line", "field"),
    [
        ("yesterday,10,180,\n", 2, "interval_start"),
        ("09:00,-3,180,\n", 2, "contacts"),
        ("09:00,3,180,\n09:15,3,180,0\n", 3, "patience_s"),
        ("09:00,3,180,,extra\n", 2, "row"),
    ],
)
def test_bad_rows_are_refused(tmp_path: Path, body: str, line: int, field: str) -> None:
    path = write(tmp_path, "interval_start,contacts,aht_s,patience_s\n" + body)
    with pytest.raises(ForecastError) as caught:
        read_forecast(path)
    assert (caught.value.line, caught.value.field) == (line, field)


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--rate-per-hour", "100"]) == 2
    assert "--aht" in capsys.readouterr().err
    assert main(["--rate-per-hour", "100", "--aht", "100", "--sl", "2"]) == 2
    assert "service_level" in capsys.readouterr().err
    assert main(["--forecast", "/nonexistent/forecast.csv"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main([]) == 2
