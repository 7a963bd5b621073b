"""Plan results as data and documents: a JSON-ready dict, two CSV files (the schedule, one row
per agent and shift; the coverage, one row per interval and skill group) and a one-file HTML
report with plots (requirement against scheduled staff, simulated service level against
target, per interval and group)."""

from __future__ import annotations

import csv
import html
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from simulations.planning.api import PlanResult
from simulations.planning.model import DAY_S, WEEKDAYS
from simulations.report import figure_png  # one PNG-embedding helper for every report

_STYLE = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
img{max-width:100%}.note{color:#555;font-size:0.9em}"""


def _when(result: PlanResult, seconds: float) -> str:
    start = result.forecast.start
    day, rest = divmod(int(seconds), DAY_S)
    d = start + timedelta(days=day)
    return f"{d.isoformat()} {WEEKDAYS[d.weekday()]} {rest // 3600:02d}:{rest % 3600 // 60:02d}"


def _clean(x: float) -> float | None:
    return None if math.isnan(x) else round(float(x), 6)


def schedule_rows(result: PlanResult) -> list[dict[str, Any]]:
    """One row per agent and shift."""
    return [
        {
            "agent_id": a.agent_id,
            "skills": "+".join(sorted(a.skills)),
            "shift": a.shift,
            "start": _when(result, a.start_s),
            "end": _when(result, a.end_s),
            "breaks": "; ".join(
                f"{_when(result, b)[-5:]}-{_when(result, e)[-5:]}" for b, e in a.breaks
            ),
            "paid_hours": a.paid_hours,
        }
        for a in result.roster.assignments
    ]


def coverage_rows(result: PlanResult) -> list[dict[str, Any]]:
    """One row per interval and skill group: forecast, requirement, staff, simulated figures."""
    rows = []
    step = result.request.interval_s
    check = result.check
    for g in result.requirements.groups:
        staffed = result.cover.staffed(g)
        for k in range(result.requirements.intervals):
            rows.append(
                {
                    "interval": _when(result, k * step),
                    "group": g,
                    "contacts": round(float(result.base.contacts[g][k]), 3),
                    "required_erlang": int(result.base.agents[g][k]),
                    "required_final": int(result.requirements.agents[g][k]),
                    "scheduled": int(staffed[k]),
                    "short": int(result.cover.under[g][k]),
                    "sim_offered": _clean(check.offered[g][k]) if check else None,
                    "sim_service_level": _clean(check.service_level[g][k]) if check else None,
                    "target": result.request.target.service_level,
                }
            )
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Rows to a CSV file with a header."""
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["empty"])
        writer.writeheader()
        writer.writerows(rows)


def to_dict(result: PlanResult) -> dict[str, Any]:
    """Everything a program needs from a plan, JSON-ready."""
    last = result.iterations[-1]
    return {
        "plan": result.request.name,
        "start_date": result.forecast.start.isoformat(),
        "days": result.request.days,
        "interval_minutes": result.request.interval_s // 60,
        "forecast": {
            "method": result.forecast.method,
            "contacts": round(float(result.forecast.total().sum()), 1),
            "accuracy": result.accuracy.as_dict() if result.accuracy else None,
        },
        "cost": last.cost,
        "objective": last.objective,
        "bound": last.bound,
        "gap": last.gap,
        "solver_status": last.status,
        "meets_target": result.meets_target,
        "shifts": len(result.roster.assignments),
        "paid_hours": sum(a.paid_hours for a in result.roster.assignments),
        "unfilled": [list(u) for u in result.roster.unfilled],
        "iterations": [
            {
                k: (_clean(v) if isinstance(v, float) else v)
                for k, v in ((name, getattr(it, name)) for name in it.__slots__)
            }
            for it in result.iterations
        ],
        "seconds": round(result.seconds, 3),
    }


def _plots(result: PlanResult) -> list[str]:
    step_h = result.request.interval_s / 3600.0
    out = []
    for g in result.requirements.groups:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 5.2), sharex=True)
        n = result.requirements.intervals
        hours = [k * step_h for k in range(n)]
        top.step(
            hours, result.base.agents[g], where="post", label="required (Erlang)", color="#999"
        )
        top.step(
            hours, result.requirements.agents[g], where="post", label="required (after simulation)"
        )
        top.step(hours, result.cover.staffed(g), where="post", label="scheduled on duty")
        top.set_ylabel("agents")
        top.set_title(f"{g}: requirement against scheduled staff per interval")
        top.legend(fontsize=8)
        if result.check is not None:
            bottom.plot(hours, result.check.service_level[g], ".", markersize=3, label="simulated")
        bottom.axhline(
            result.request.target.service_level, color="red", linestyle="--", label="target"
        )
        bottom.set_ylim(0, 1.05)
        bottom.set_ylabel("service level")
        bottom.set_xlabel("hours from the start of the plan")
        bottom.legend(fontsize=8)
        for day in range(result.request.days + 1):
            for ax in (top, bottom):
                ax.axvline(day * 24, color="#ddd", linewidth=0.8)
        out.append(figure_png(fig))
    return out


def _row(label: str, method: float, naive: float) -> str:
    return f"<tr><td>{label}</td><td>{method:.1%}</td><td>{naive:.1%}</td></tr>"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def write_html(result: PlanResult, path: Path) -> None:
    """The HTML report: summary, forecast accuracy, iterations, plots."""
    data = to_dict(result)
    acc = result.accuracy
    rows = "".join(
        f"<tr><td>{i['index']}</td><td>{i['cost']:,.0f}</td><td>{100 * (i['gap'] or 0):.2f}%</td>"
        f"<td>{i['solve_s']:.1f}s</td><td>{i['shifts']}</td><td>{i['misses']}</td>"
        f"<td>{_pct(i['min_service_level'])}</td>"
        f"<td>{i['added']}</td></tr>"
        for i in data["iterations"]
    )
    accuracy = (
        ""
        if acc is None
        else (
            f"<h2>Forecast accuracy (held out {acc.holdout[0]} … {acc.holdout[-1]})</h2><table>"
            "<tr><th>WAPE</th><th>"
            + html.escape(acc.method)
            + "</th><th>naive (same weekday last week)</th></tr>"
            + _row("interval × issue", acc.wape_cells, acc.naive_wape_cells)
            + _row("interval", acc.wape_intervals, acc.naive_wape_intervals)
            + _row("day", acc.wape_days, acc.naive_wape_days)
            + "</table>"
        )
    )
    body = (
        f"<h1>Plan {html.escape(result.request.name)}</h1>"
        f"<p>{result.request.days} days from {data['start_date']}, intervals of "
        f"{data['interval_minutes']} min; cost {data['cost']:,.2f}, gap {100 * data['gap']:.2f}%, "
        f"{data['shifts']} shifts, {data['paid_hours']:,.1f} paid hours; every interval meets "
        f"the target in simulation: <b>{'yes' if data['meets_target'] else 'no'}</b>.</p>"
        f"{accuracy}<h2>Iterations (simulation in the loop)</h2><table><tr><th>#</th><th>cost</th>"
        "<th>gap</th><th>solve</th><th>shifts</th><th>intervals below target</th>"
        f"<th>lowest SL</th><th>agents added</th></tr>{rows}</table>"
        "<h2>Per interval</h2>" + "".join(_plots(result))
    )
    page = f"<!doctype html><meta charset=utf-8><title>{html.escape(result.request.name)}</title>"
    Path(path).write_text(f"{page}<style>{_STYLE}</style>{body}", encoding="utf-8")
