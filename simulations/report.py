"""HTML reports with embedded PNG plots (matplotlib, Agg backend): one file, no internet.

A study report shows service level per interval against target, queue length, staffing
against the Erlang C requirement, and waits by issue and channel, then the summary table.
The headline report shows silos and Omniroute side by side with the assumptions stated.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from router.domain import Channel
from simulations.export import bot_estimates, clock, interval_rows, requirement, to_dict
from simulations.results import Estimate, Replications
from simulations.scenario import Scenario

if TYPE_CHECKING:
    from simulations.headline import HeadlineResult

_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
img{max-width:100%}.note{color:#555;font-size:0.9em}"""


def figure_png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _ticks(ax: Axes, starts: list[float]) -> None:
    step = max(1, len(starts) // 12)
    ax.set_xticks(starts[::step], [clock(s) for s in starts[::step]], rotation=45, fontsize=8)


def _service_level_plot(reps: Replications, target: float) -> str:
    rows = interval_rows(reps)
    fig, ax = plt.subplots(figsize=(10, 3.6))
    for channel in reps.runs[0].channels:
        by_k: dict[float, list[float]] = {}
        for r in rows:
            people = r["offered"] - r["contained"]  # what a bot resolved is not measured
            if r["channel"] == str(channel) and people:
                acc = by_k.setdefault(r["start_s"], [0.0, 0.0])
                acc[0] += (r["service_level"] or 0.0) * people
                acc[1] += people
        xs = sorted(by_k)
        ax.plot(xs, [by_k[x][0] / by_k[x][1] for x in xs], marker=".", label=str(channel))
    ax.axhline(target, color="red", linestyle="--", label=f"target {target:.0%}")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("service level")
    ax.set_title("Service level per interval (answered within target / offered)")
    _ticks(ax, [k * reps.plan.interval_s for k in range(reps.plan.n_intervals)])
    ax.legend(fontsize=8)
    return figure_png(fig)


def _queue_plot(reps: Replications) -> str:
    fig, ax = plt.subplots(figsize=(10, 3.2))
    starts = [k * reps.plan.interval_s for k in range(reps.plan.n_intervals)]
    for j, channel in enumerate(reps.runs[0].channels):
        mean = [
            sum(run.queue_length[k][j] for run in reps.runs) / len(reps.runs)
            for k in range(len(starts))
        ]
        ax.step(starts, mean, where="post", label=str(channel))
    ax.set_ylabel("contacts waiting (mean)")
    ax.set_title("Queue length per interval")
    _ticks(ax, starts)
    ax.legend(fontsize=8)
    return figure_png(fig)


def _staffing_plot(reps: Replications, target: float) -> str:
    fig, ax = plt.subplots(figsize=(10, 3.2))
    starts = [k * reps.plan.interval_s for k in range(reps.plan.n_intervals)]
    ax.step(starts, reps.runs[0].on_duty, where="post", label="agents on duty")
    ax.step(
        starts,
        requirement(reps, target),
        where="post",
        linestyle="--",
        label=f"Erlang C requirement ({target:.0%} in target, per channel)",
    )
    ax.set_ylabel("agents")
    ax.set_title("Staffing against requirement")
    _ticks(ax, starts)
    ax.legend(fontsize=8)
    return figure_png(fig)


def _waits_plot(reps: Replications) -> str:
    pairs = list(reps.runs[0].by_issue_channel)
    labels = [f"{issue}\n{channel}" for issue, channel in pairs]

    def mean(pair: tuple[str, Channel], measure: str) -> float:
        values = [
            getattr(run.by_issue_channel[pair], measure)
            for run in reps.runs
            if pair in run.by_issue_channel
        ]
        values = [v for v in values if not math.isnan(v)]
        return sum(values) / len(values) if values else 0.0

    fig, ax = plt.subplots(figsize=(10, 3.4))
    xs = range(len(pairs))
    ax.bar([x - 0.2 for x in xs], [mean(p, "asa_s") for p in pairs], 0.4, label="ASA")
    ax.bar(
        [x + 0.2 for x in xs],
        [mean(p, "p90_wait_s") for p in pairs],
        0.4,
        label="90th percentile wait",
    )
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel("seconds")
    ax.set_yscale("symlog", linthresh=10)
    ax.set_title("Waits by issue and channel")
    ax.legend(fontsize=8)
    return figure_png(fig)


def _summary_html(reps: Replications, scenario: Scenario) -> str:
    data = to_dict(reps, scenario.target_service_level)
    head = (
        "<tr><th>slice</th><th>offered</th><th>service level</th><th>abandoned</th>"
        "<th>ASA (s)</th><th>p90 wait (s)</th><th>repeats</th></tr>"
    )

    def cell(m: dict[str, float | None], pct: bool = False) -> str:
        if m["mean"] is None:
            return "-"
        value = m["mean"] * (100 if pct else 1)
        ci = "" if m["ci95"] is None else f" ±{m['ci95'] * (100 if pct else 1):.1f}"
        return f"{value:.1f}{'%' if pct else ''}{ci}"

    body = []
    slices = [("all", data["total"])] + [(f"channel {c}", v) for c, v in data["by_channel"].items()]
    slices += [(f"issue {i}", v) for i, v in data["by_issue"].items()]
    for name, m in slices:
        body.append(
            f"<tr><td>{html.escape(name)}</td><td>{cell(m['offered'])}</td>"
            f"<td>{cell(m['service_level'], True)}</td>"
            f"<td>{cell(m['abandon_rate'], True)}</td><td>{cell(m['asa_s'])}</td>"
            f"<td>{cell(m['p90_wait_s'])}</td><td>{cell(m['repeats'])}</td></tr>"
        )
    occupancy = "".join(
        f"<tr><td>{html.escape(g)}</td><td>{cell(m, True)}</td></tr>"
        for g, m in data["occupancy"].items()
    )
    return (
        f"<table>{head}{''.join(body)}</table><h3>Occupancy by agent group</h3>"
        f"<table><tr><th>group</th><th>occupancy</th></tr>{occupancy}</table>"
    )


def _bots_html(reps: Replications) -> list[str]:
    """Containment per issue and channel of the bot-first rules (nothing when none)."""
    rows = bot_estimates(reps)
    if not rows:
        return []

    def cell(e: Estimate, pct: bool = False) -> str:
        if math.isnan(e.mean):
            return "-"
        scale = 100 if pct else 1
        ci = "" if math.isnan(e.half_width) else f" ±{e.half_width * scale:.1f}"
        return f"{e.mean * scale:.1f}{'%' if pct else ''}{ci}"

    body = "".join(
        f"<tr><td>{html.escape(issue)}</td><td>{html.escape(str(channel))}</td>"
        f"<td>{cell(e['sent_to_bot'])}</td><td>{cell(e['contained'])}</td>"
        f"<td>{cell(e['containment'], True)}</td><td>{100 * planned:.1f}%</td>"
        f"<td>{cell(e['bot_mean_s'])}</td><td>{cell(e['escalated_asa_s'])}</td>"
        f"<td>{cell(e['escalated_after_bot_s'])}</td></tr>"
        for issue, channel, planned, e in rows
    )
    return [
        "<h2>Bots first</h2>",
        "<p class=note>Contained: resolved by the bot, never in the people's queue; service "
        "level counts the contacts that needed a person. An escalated contact's wait counts "
        "from its arrival, the bot's time included (after bot: from its escalation, as the "
        "live service's figures count it).</p>",
        "<table><tr><th>issue</th><th>channel</th><th>sent to bot</th><th>contained</th>"
        "<th>containment</th><th>planned</th><th>bot time (s)</th>"
        f"<th>escalated ASA (s)</th><th>after bot (s)</th></tr>{body}</table>",
    ]


def write_report(reps: Replications, scenario: Scenario, path: Path) -> None:
    """The study report: plots and summary, one self-contained HTML file."""
    target = scenario.target_service_level
    parts = [
        f"<h1>{html.escape(scenario.name)}</h1>",
        f"<p>{html.escape(scenario.description)}</p>",
        f"<p class=note>{len(reps.runs)} replications, seed {scenario.seed}, "
        f"{reps.contacts:,} contacts simulated; ± is the 95% confidence half-width "
        "(Student's t). Per-interval curves pool the replications.</p>",
        "<h2>Summary</h2>",
        _summary_html(reps, scenario),
        *_bots_html(reps),
        "<h2>Service level</h2>",
        _service_level_plot(reps, target),
        "<h2>Queue</h2>",
        _queue_plot(reps),
        "<h2>Staffing</h2>",
        _staffing_plot(reps, target),
        "<h2>Waits</h2>",
        _waits_plot(reps),
    ]
    _write(path, scenario.name, parts)


def _write(path: Path, title: str, parts: list[str]) -> None:
    page = (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}"
        f"</title><style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )
    path.write_text(page, encoding="utf-8")


def headline_figure(result: HeadlineResult) -> Figure:
    """Silos vs Omniroute: service level and ASA per channel, repeats, agents needed."""
    channels = [str(c) for c in result.omni.runs[0].channels]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.8))
    designs = (("channel silos", result.silos, "#999999"), ("Omniroute", result.omni, "#1f77b4"))
    for offset, (label, reps, color) in zip((-0.2, 0.2), designs, strict=True):
        sl = [reps.by_channel(c, "service_level") for c in reps.runs[0].channels]
        asa = [reps.by_channel(c, "asa_s") for c in reps.runs[0].channels]
        xs = [i + offset for i in range(len(channels))]
        axes[0].bar(
            xs, [e.mean for e in sl], 0.4, yerr=[_err(e) for e in sl], label=label, color=color
        )
        axes[1].bar(xs, [e.mean for e in asa], 0.4, yerr=[_err(e) for e in asa], color=color)
        rep = reps.total("repeats")
        axes[2].bar([offset], [rep.mean], 0.4, yerr=[_err(rep)], color=color)
    axes[0].axhline(result.scenario.target_service_level, color="red", linestyle="--")
    axes[0].set_title("service level by channel")
    axes[1].set_title("ASA by channel (s)")
    axes[1].set_yscale("symlog", linthresh=10)
    axes[2].set_title("repeat contacts per day")
    for ax in axes[:2]:
        ax.set_xticks(range(len(channels)), channels)
    axes[2].set_xticks([-0.2, 0.2], ["silos", "Omniroute"])
    planned = len(result.scenario.plan.agents)
    needed = [result.needed_silos or 0, result.needed_omni or 0]
    axes[3].bar([-0.2, 0.2], needed, 0.4, color=["#999999", "#1f77b4"])
    axes[3].axhline(planned, color="black", linestyle=":", label=f"planned {planned}")
    axes[3].set_xticks([-0.2, 0.2], ["silos", "Omniroute"])
    axes[3].set_title("agents needed for target")
    axes[3].legend(fontsize=8)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{result.scenario.name}: same agents, same customers (error bars: 95% CI)")
    return fig


def _err(e: object) -> float:
    half = getattr(e, "half_width", math.nan)
    return 0.0 if math.isnan(half) else float(half)


def write_headline_report(result: HeadlineResult, path: Path) -> None:
    """The headline page: the plot, the numbers and the assumptions; a PNG beside it."""
    from simulations.headline import headline_tables  # noqa: F401 - same figures as the CLI

    fig = headline_figure(result)
    fig.savefig(path.with_suffix(".png"), dpi=100, bbox_inches="tight")
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{s.mean:.3g} ±{_err(s):.2g}</td>"
        f"<td>{o.mean:.3g} ±{_err(o):.2g}</td></tr>"
        for label, s, o, _ in result.rows()
    )
    parts = [
        f"<h1>Channel silos vs Omniroute: {html.escape(result.scenario.name)}</h1>",
        figure_png(fig),
        "<table><tr><th>measure</th><th>silos</th><th>Omniroute</th></tr>"
        f"<tr><td>agents planned</td><td>{len(result.scenario.plan.agents)}</td>"
        f"<td>{len(result.scenario.plan.agents)}</td></tr>"
        f"<tr><td>agents needed</td><td>{result.needed_silos}</td>"
        f"<td>{result.needed_omni}</td></tr>{rows}</table>",
        "<h2>Assumptions</h2><pre>",
        html.escape(_assumptions(result.scenario)),
        "</pre>",
    ]
    _write(path, result.scenario.name, parts)


def _assumptions(scenario: Scenario) -> str:
    """The comment block at the top of the scenario file: where its assumptions are stated."""
    try:
        lines = Path(scenario.source).read_text(encoding="utf-8").splitlines()
    except OSError:
        return "(scenario file not readable)"
    return "\n".join(line.lstrip("# ") for line in lines if line.startswith("#"))
