"""Small plans shared by the planning tests: one day, 30-minute intervals, a tiny forecast."""

from __future__ import annotations

from pathlib import Path

FORECAST_HEADER = "interval_start,issue,contacts,aht_s,patience_s\n"


def write_forecast(
    path: Path, per_interval: float = 20.0, issues: tuple[str, ...] = ("billing",)
) -> Path:
    """A one-day forecast CSV, 08:00–16:00, `per_interval` contacts per issue and interval."""
    rows = [FORECAST_HEADER]
    for k in range(16):
        clock = f"{8 + k // 2:02d}:{30 * (k % 2):02d}"
        for issue in issues:
            rows.append(f"2024-03-04T{clock},{issue},{per_interval},180,120\n")
    path.write_text("".join(rows), encoding="utf-8")
    return path


def plan_yaml(
    forecast: Path, *, extra: str = "", agents: str = "", templates: str | None = None
) -> str:
    """A plan file text around `forecast`; pieces may be replaced to provoke errors."""
    templates = templates or (
        "  - {name: early, skills: [care], starts: ['08:00', '08:30'], length: 4h,"
        " cost_per_hour: 10}\n"
        "  - {name: day, skills: [care], starts: {from: '08:00', to: '10:00', every: 30m},"
        " length: 6h, cost_per_hour: 10, breaks: [{length: 30m, window: [2h, 3h]}]}\n"
        "  - {name: late, skills: [care], starts: ['12:00'], length: 4h, cost_per_hour: 10}\n"
    )
    return (
        "name: tiny\n"
        "interval: 30m\n"
        "days: 1\n"
        f"demand: {{forecast: {forecast}}}\n"
        "groups: [{name: care, issues: [billing]}]\n"
        "target: {service_level: 0.8, answer_within: 20s}\n"
        "solver: {time_limit: 10s, workers: 8}\n"
        "loop: {iterations: 2, replications: 1, seed: 3}\n"
        f"templates:\n{templates}{agents}{extra}"
    )
