"""Results as data: JSON-ready dicts, per-interval rows (CSV), the staffing requirement.

Per-interval figures pool the replications: counts are means per replication, ratios are
pooled (service level = all answered in target / all that needed a person: offered less
those a bot resolved), so a quiet interval with one contact in one replication does not
swing the curve.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from router.domain import Channel
from simulations.erlang import staff
from simulations.results import MEASURES, Estimate, Figures, Replications, estimate

CSV_COLUMNS = (
    "interval",
    "start_s",
    "issue",
    "channel",
    "offered",
    "answered",
    "abandoned",
    "service_level",
    "abandon_rate",
    "asa_s",
    "mean_wait_s",
    "p90_wait_s",
    "repeats",
    "sent_to_bot",
    "contained",
)


def clock(seconds: float) -> str:
    """Simulated time as day and clock ``d1 08:15`` (or ``08:15`` on the first day)."""
    day, rest = divmod(int(seconds), 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}"
    return f"d{day + 1} {text}" if day else text


def _estimate(e: Estimate) -> dict[str, float | int | None]:
    def clean(x: float) -> float | None:
        return None if math.isnan(x) else round(x, 6)

    return {"mean": clean(e.mean), "ci95": clean(e.half_width), "n": e.n}


def to_dict(reps: Replications, target_service_level: float) -> dict[str, Any]:
    """Everything a program needs, with 95% half-widths (``ci95``)."""
    first = reps.runs[0]
    return {
        "scenario": reps.plan.name,
        "replications": len(reps.runs),
        "seeds": list(reps.seeds),
        "contacts_simulated": reps.contacts,
        "target_service_level": target_service_level,
        "total": {m: _estimate(reps.total(m)) for m in MEASURES},
        "by_issue": {
            i: {m: _estimate(reps.by_issue(i, m)) for m in MEASURES} for i in first.issues
        },
        "by_channel": {
            str(c): {m: _estimate(reps.by_channel(c, m)) for m in MEASURES} for c in first.channels
        },
        "occupancy": {g: _estimate(reps.occupancy(g)) for g in first.groups},
        "first_contact_resolution": _estimate(reps.extra("first_contact_resolution")),
        "bots": bot_rows(reps),
        "intervals": interval_rows(reps),
    }


#: The measures of a bot-first slice (`bot_estimates`).
BOT_MEASURES = (
    "offered",
    "sent_to_bot",
    "contained",
    "containment",
    "bot_mean_s",
    "escalated_asa_s",
    "escalated_after_bot_s",
)


def bot_estimates(reps: Replications) -> list[tuple[str, Channel, float, dict[str, Estimate]]]:
    """Per issue and channel of a bot-first rule: (issue, channel, planned containment,
    `BOT_MEASURES` over replications) -- contacts sent to a bot and contained per
    replication, containment measured, the bot's mean time, and the mean wait for a person
    of escalated contacts, from their arrival and from their escalation."""
    out = []
    for issue, channel in reps.runs[0].by_issue_channel:
        model = reps.plan.bot_model(issue)
        if model is None:
            continue
        figs = [f for run in reps.runs if (f := run.by_issue_channel.get((issue, channel)))]

        def est(measure: str, figs: list[Figures] = figs) -> Estimate:
            return estimate([float(getattr(f, measure)) for f in figs])

        out.append((issue, channel, model.containment, {m: est(m) for m in BOT_MEASURES}))
    return out


def bot_rows(reps: Replications) -> list[dict[str, Any]]:
    """`bot_estimates` as JSON-ready rows."""
    return [
        {
            "issue": issue,
            "channel": str(channel),
            "containment_planned": planned,
            **{m: _estimate(e) for m, e in figures.items()},
        }
        for issue, channel, planned, figures in bot_estimates(reps)
    ]


def interval_rows(reps: Replications) -> list[dict[str, Any]]:
    """One row per (interval, issue, channel) with arrivals, pooled over replications."""
    sums: defaultdict[tuple[int, str, Channel], dict[str, float]] = defaultdict(
        lambda: defaultdict(float)
    )
    for run in reps.runs:
        for key, fig in run.cells.items():
            acc = sums[key]
            acc["offered"] += fig.offered
            acc["answered"] += fig.answered
            acc["abandoned"] += fig.abandoned
            acc["repeats"] += fig.repeats
            acc["sent_to_bot"] += fig.sent_to_bot
            acc["contained"] += fig.contained
            acc["in_target"] += fig.service_level * fig.for_people if fig.for_people else 0.0
            if fig.answered:
                acc["wait_answered"] += fig.asa_s * fig.answered
            waited = fig.answered + fig.abandoned
            if waited and not math.isnan(fig.mean_wait_s):
                acc["wait_all"] += fig.mean_wait_s * waited
                acc["p90"] += fig.p90_wait_s
                acc["p90_n"] += 1
    n = len(reps.runs)
    rows: list[dict[str, Any]] = []
    interval_s = reps.plan.interval_s
    for (k, issue, channel), acc in sorted(
        sums.items(), key=lambda kv: (kv[0][0], kv[0][1], str(kv[0][2]))
    ):
        offered, answered = acc["offered"], acc["answered"]
        people = offered - acc["contained"]  # needed a person (a bot resolved the others)
        waited_all = answered + acc["abandoned"]
        rows.append(
            {
                "interval": clock(k * interval_s),
                "start_s": k * interval_s,
                "issue": issue,
                "channel": str(channel),
                "offered": offered / n,
                "answered": answered / n,
                "abandoned": acc["abandoned"] / n,
                "service_level": acc["in_target"] / people if people else None,
                "abandon_rate": acc["abandoned"] / people if people else None,
                "asa_s": acc["wait_answered"] / answered if answered else None,
                "mean_wait_s": acc["wait_all"] / waited_all if waited_all else None,
                "p90_wait_s": acc["p90"] / acc["p90_n"] if acc["p90_n"] else None,
                "repeats": acc["repeats"] / n,
                "sent_to_bot": acc["sent_to_bot"] / n,
                "contained": acc["contained"] / n,
            }
        )
    return rows


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Per-interval rows as CSV (empty cells where a ratio is undefined)."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    k: (
                        ""
                        if row[k] is None
                        else (round(row[k], 4) if isinstance(row[k], float) else row[k])
                    )
                    for k in CSV_COLUMNS
                }
            )


def requirement(reps: Replications, target_service_level: float) -> list[float]:
    """Agents needed per interval by Erlang C, channel by channel (summed): the planner's
    single-skill yardstick for the staffing plot. Chats and e-mails held concurrently count
    as a fraction of an agent (load divided by the usual concurrency of the plan's agents)."""
    plan = reps.plan
    n_runs = len(reps.runs)
    offered: defaultdict[tuple[int, Channel], float] = defaultdict(float)
    for run in reps.runs:
        for (k, _, channel), fig in run.cells.items():
            offered[(k, channel)] += fig.for_people / n_runs  # a bot's contained: no load
    aht: dict[Channel, float] = {}
    for channel in plan.channels():
        streams = [s for s in plan.streams if s.channel == channel]
        weights = [sum(s.rates_per_s) or 1.0 for s in streams]
        means = [s.handle.mean_s for s in streams]
        aht[channel] = (
            sum(w * m for w, m in zip(weights, means, strict=True)) / sum(weights)
            if streams
            else 300.0
        )
    concurrency: dict[Channel, float] = {}
    for channel in plan.channels():
        caps = [a.capacity.get(channel, 0) for a in plan.agents if a.capacity.get(channel, 0)]
        concurrency[channel] = sum(caps) / len(caps) if caps else 1.0
    out = []
    for k in range(plan.n_intervals):
        total = 0.0
        for channel in plan.channels():
            count = offered.get((k, channel), 0.0)
            if count <= 0:
                continue
            rate = count / plan.interval_s
            target = min(plan.rule(i).target_s(channel) for i in plan.issues())
            need = staff(
                rate, aht[channel] / concurrency[channel], target, target_service_level
            ).agents_required
            total += need
        out.append(total)
    return out
