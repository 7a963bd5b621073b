"""``omniroute plan``: from a contact log or a forecast to a week's confirmed schedule.

    omniroute plan PLAN.yaml [--json] [--schedule PATH.csv] [--coverage PATH.csv]
                   [--report PATH.html] [--time-limit S] [--iterations N] [--no-simulate]
                   [--seed S]
    omniroute plan --example                  the bank week (simulations/examples/)

Exit status: 0 planned and every interval meets its target in simulation; 1 planned, but
some intervals still miss after the last iteration; 2 bad input (file, line and field named)
or a demand that cannot be met (the intervals and the reason named).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from router import logs
from router.errors import RoutingError
from simulations.planning.api import PlanProgress, PlanResult, ProgressCallback, plan
from simulations.planning.config import load_plan
from simulations.planning.model import PlanRequest
from simulations.planning.report import (
    coverage_rows,
    schedule_rows,
    to_dict,
    write_csv,
    write_html,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plan_bank_week.yaml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omniroute plan", description=__doc__.split("\n")[0])
    parser.add_argument("plan", nargs="?", type=Path, help="plan YAML file")
    parser.add_argument("--example", action="store_true", help="plan the bank week example")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--schedule", type=Path, metavar="PATH.csv", help="write the schedule")
    parser.add_argument(
        "--coverage", type=Path, metavar="PATH.csv", help="write coverage per interval"
    )
    parser.add_argument("--report", type=Path, metavar="PATH.html", help="write an HTML report")
    parser.add_argument(
        "--time-limit", type=float, help="CP-SAT seconds per solve (overrides file)"
    )
    parser.add_argument("--iterations", type=int, help="simulation rounds (overrides file)")
    parser.add_argument("--no-simulate", action="store_true", help="skip simulation in the loop")
    parser.add_argument("--seed", type=int, help="simulation seed (overrides file)")
    return parser


def _override(request: PlanRequest, args: argparse.Namespace) -> PlanRequest:
    solver, loop = request.solver, request.loop
    if args.time_limit is not None:
        solver = replace(solver, time_limit_s=max(0.1, args.time_limit))
    if args.iterations is not None:
        loop = replace(loop, max_iterations=max(1, args.iterations))
    if args.no_simulate:
        loop = replace(loop, enabled=False)
    if args.seed is not None:
        loop = replace(loop, seed=args.seed)
    return replace(request, solver=solver, loop=loop)


@contextmanager
def _bar(console: Console) -> Iterator[ProgressCallback]:
    with Progress(
        TextColumn("{task.description:<52}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("planning", total=1.0)

        def update(step: PlanProgress) -> None:
            label = step.message or f"iteration {step.iteration}: {step.stage}"
            bar.update(task, completed=step.fraction, description=label)

        yield update


def _summary(result: PlanResult) -> list[Table]:
    acc = result.accuracy
    tables = []
    if acc is not None:
        t = Table(
            title=f"forecast error (WAPE) on held-out {acc.holdout[0]} … {acc.holdout[-1]}",
            title_justify="left",
        )
        for column in ("level", acc.method, "naive (same weekday last week)"):
            t.add_column(column, justify="left" if column == "level" else "right")
        t.add_row("interval × issue", f"{acc.wape_cells:.1%}", f"{acc.naive_wape_cells:.1%}")
        t.add_row("interval", f"{acc.wape_intervals:.1%}", f"{acc.naive_wape_intervals:.1%}")
        t.add_row("day", f"{acc.wape_days:.1%}", f"{acc.naive_wape_days:.1%}")
        tables.append(t)
    t = Table(title="iterations: solve, roster, simulate", title_justify="left")
    for column in (
        "#",
        "cost",
        "gap",
        "solve",
        "status",
        "shifts",
        "short",
        "below target",
        "lowest SL",
        "added",
    ):
        t.add_column(column, justify="right")
    for it in result.iterations:
        t.add_row(
            str(it.index),
            f"{it.cost:,.0f}",
            f"{it.gap:.2%}",
            f"{it.solve_s:.1f}s",
            it.status,
            str(it.shifts),
            str(it.agents_short),
            str(it.misses),
            "-" if it.min_service_level != it.min_service_level else f"{it.min_service_level:.1%}",
            str(it.added),
        )
    tables.append(t)
    return tables


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``omniroute plan``; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    console = Console(stderr=args.json, width=None if sys.stdout.isatty() else 132)
    logs.configure(json=False, level="warning")  # on stderr: stdout is for results
    path = EXAMPLE if args.example else args.plan
    if path is None:
        console.print("[red]error:[/] give a PLAN file or --example")
        return 2
    try:
        request = _override(load_plan(path), args)
        with _bar(console) as progress:
            result = plan(request, progress)
    except RoutingError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    if args.schedule:
        write_csv(schedule_rows(result), args.schedule)
    if args.coverage:
        write_csv(coverage_rows(result), args.coverage)
    if args.report:
        write_html(result, args.report)
    if args.json:
        sys.stdout.write(json.dumps(to_dict(result), indent=2) + "\n")
    else:
        for table in _summary(result):
            console.print(table)
        data = to_dict(result)
        console.print(
            f"{data['shifts']} shifts, {data['paid_hours']:,.1f} paid hours, cost "
            f"{data['cost']:,.2f} (gap {data['gap']:.2%}); every interval meets the target in "
            f"simulation: {'yes' if result.meets_target else 'no'}"
        )
        for name in ("schedule", "coverage", "report"):
            if getattr(args, name):
                console.print(f"{name}: {getattr(args, name)}")
    return 0 if result.meets_target or not request.loop.enabled else 1
