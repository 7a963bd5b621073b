"""Readable summary tables (rich) of a study: by issue and channel, by channel, by group,
customer journeys, and bots when a rule sends contacts to a bot first."""

from __future__ import annotations

import math

from rich.table import Table

from simulations.export import bot_estimates
from simulations.results import Estimate, Figures, Replications, estimate
from simulations.scenario import Scenario


def pct(e: Estimate) -> str:
    """A share with its 95% half-width, in percent."""
    if math.isnan(e.mean):
        return "-"
    if math.isnan(e.half_width):
        return f"{100 * e.mean:.1f}%"
    return f"{100 * e.mean:.1f}% ±{100 * e.half_width:.1f}"


def secs(e: Estimate) -> str:
    """A duration with its 95% half-width, in seconds (minutes past ten minutes)."""
    if math.isnan(e.mean):
        return "-"
    unit, scale = ("m", 60.0) if e.mean >= 600 else ("s", 1.0)
    text = f"{e.mean / scale:.1f}{unit}"
    return text if math.isnan(e.half_width) else f"{text} ±{e.half_width / scale:.1f}"


def count(e: Estimate) -> str:
    """A count per replication."""
    return "-" if math.isnan(e.mean) else f"{e.mean:,.0f}"


def summary_tables(reps: Replications, scenario: Scenario) -> list[Table]:
    """The tables ``omniroute simulate`` prints."""
    n = len(reps.runs)
    title = (
        f"{scenario.name}: {n} replication{'s' * (n > 1)}, seed {scenario.seed}, "
        f"{reps.contacts:,} contacts simulated (± = 95% CI)"
    )
    main = Table(title=title, title_justify="left")
    for column in (
        "issue",
        "channel",
        "offered",
        "answered",
        "abandoned",
        "service level",
        "ASA",
        "mean wait",
        "p90 wait",
        "repeats",
    ):
        main.add_column(column, justify="left" if column in ("issue", "channel") else "right")
    first = reps.runs[0]
    for issue, channel in first.by_issue_channel:
        figs = [run.by_issue_channel.get((issue, channel)) for run in reps.runs]

        def est(measure: str, figs: list[Figures | None] = figs) -> Estimate:
            return estimate([getattr(f, measure) for f in figs if f is not None])

        main.add_row(
            issue,
            str(channel),
            count(est("offered")),
            count(est("answered")),
            pct(est("abandon_rate")),
            pct(est("service_level")),
            secs(est("asa_s")),
            secs(est("mean_wait_s")),
            secs(est("p90_wait_s")),
            count(est("repeats")),
        )
    for channel in first.channels:

        def by(measure: str, channel: object = channel) -> Estimate:
            return reps.by_channel(channel, measure)  # type: ignore[arg-type]

        main.add_row(
            "[b]all[/]",
            f"[b]{channel}[/]",
            count(by("offered")),
            count(by("answered")),
            pct(by("abandon_rate")),
            pct(by("service_level")),
            secs(by("asa_s")),
            secs(by("mean_wait_s")),
            secs(by("p90_wait_s")),
            count(by("repeats")),
        )
    t = reps.total
    main.add_row(
        "[b]all[/]",
        "[b]all[/]",
        count(t("offered")),
        count(t("answered")),
        pct(t("abandon_rate")),
        pct(t("service_level")),
        secs(t("asa_s")),
        secs(t("mean_wait_s")),
        secs(t("p90_wait_s")),
        count(t("repeats")),
    )
    groups = Table(title="agent groups", title_justify="left")
    groups.add_column("group")
    groups.add_column("agents", justify="right")
    groups.add_column("occupancy", justify="right")
    for group in first.groups:
        size = sum(1 for a in reps.plan.agents if a.group == group)
        groups.add_row(group, str(size), pct(reps.occupancy(group)))
    journeys = Table(title="customer journeys", title_justify="left")
    journeys.add_column("first contacts", justify="right")
    journeys.add_column("repeat contacts", justify="right")
    journeys.add_column("channel switches", justify="right")
    journeys.add_column("first-contact resolution", justify="right")
    journeys.add_row(
        count(reps.extra("first_contacts")),
        count(t("repeats")),
        count(t("switches")),
        pct(reps.extra("first_contact_resolution")),
    )
    tables = [main, groups, journeys]
    bots = bot_table(reps)
    return tables if bots is None else [*tables, bots]


def bot_table(reps: Replications) -> Table | None:
    """Containment per issue and channel of the bot-first rules (None when there are none)."""
    rows = bot_estimates(reps)
    if not rows:
        return None
    table = Table(
        title="bots first (escalated ASA: from arrival, bot time included; after bot: from "
        "escalation; service level above: the contacts that needed a person)",
        title_justify="left",
    )
    for column in (
        "issue",
        "channel",
        "sent to bot",
        "contained",
        "containment",
        "planned",
        "bot time",
        "escalated ASA",
        "after bot",
    ):
        table.add_column(column, justify="left" if column in ("issue", "channel") else "right")
    for issue, channel, planned, e in rows:
        table.add_row(
            issue,
            str(channel),
            count(e["sent_to_bot"]),
            count(e["contained"]),
            pct(e["containment"]),
            f"{100 * planned:.1f}%",
            secs(e["bot_mean_s"]),
            secs(e["escalated_asa_s"]),
            secs(e["escalated_after_bot_s"]),
        )
    return table
