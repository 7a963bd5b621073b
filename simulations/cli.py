"""``omniroute simulate``: run a scenario, print a summary, write JSON, CSV and HTML.

    omniroute simulate SCENARIO.yaml [--replications N] [--seed S] [--policy NAME]
                       [--json] [--csv PATH] [--report PATH.html]
    omniroute simulate --headline [SCENARIO.yaml]     silos vs omnichannel (default example)
    omniroute simulate --replay-bank [LOG.csv.gz] [--wrap-up S]   the bank log, replayed
    omniroute simulate --validate                     vs Erlang C/A and vs the bank log

Exit status: 0 done, 2 bad scenario or arguments (the message names file, line and field).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from router import logs
from router.errors import InvalidArgument
from simulations.export import interval_rows, to_dict, write_csv
from simulations.plan import POLICY_WEIGHTS
from simulations.results import Replications, replicate
from simulations.scenario import Scenario, load_scenario
from simulations.tables import summary_tables

EXAMPLES = Path(__file__).resolve().parent / "examples"
#: Runs expected to take longer than this many simulated contacts get a progress bar.
PROGRESS_FROM_CONTACTS = 50_000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omniroute simulate", description=__doc__.split("\n")[0])
    parser.add_argument("scenario", nargs="?", type=Path, help="scenario YAML file")
    parser.add_argument("--replications", type=int, help="independent runs (overrides file)")
    parser.add_argument("--seed", type=int, help="seed (overrides file): same seed, same result")
    parser.add_argument("--policy", choices=tuple(POLICY_WEIGHTS), help="routing weights preset")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--csv", type=Path, metavar="PATH", help="write per-interval results")
    parser.add_argument("--report", type=Path, metavar="PATH.html", help="write an HTML report")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--headline", action="store_true", help="channel silos vs omnichannel")
    mode.add_argument(
        "--validate", action="store_true", help="check against Erlang C/A and the bank log"
    )
    mode.add_argument(
        "--replay-bank",
        nargs="?",
        const="",
        metavar="LOG",
        default=None,
        help="replay the bank log (default ../shared/data/...)",
    )
    parser.add_argument(
        "--wrap-up",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="replay: after-contact work added to each logged handle time",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``omniroute simulate``; returns the exit status."""
    logs.configure(json=False, level="warning")  # on stderr: stdout is for results
    args = _parser().parse_args(argv)
    console = Console(stderr=args.json, width=None if sys.stdout.isatty() else 132)
    try:
        if args.replay_bank is not None:
            return _replay(args, console)
        if args.validate:
            return _validate(args, console)
        path = args.scenario or (EXAMPLES / "headline.yaml" if args.headline else None)
        if path is None:
            console.print("[red]error:[/] give a SCENARIO file, --headline or --replay-bank")
            return 2
        scenario = _override(load_scenario(path), args)
        if args.headline or scenario.mode == "headline":
            return _headline(scenario, args, console)
        return _simulate(scenario, args, console)
    except InvalidArgument as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2


def _override(scenario: Scenario, args: argparse.Namespace) -> Scenario:
    plan = scenario.plan
    if args.policy is not None:
        plan = replace(plan, weights=POLICY_WEIGHTS[args.policy])
    if args.replications is not None and args.replications < 1:
        raise InvalidArgument("--replications", "must be at least 1")
    return replace(
        scenario,
        plan=plan,
        seed=scenario.seed if args.seed is None else args.seed,
        replications=args.replications or scenario.replications,
    )


@contextmanager
def progress_bar(
    console: Console, label: str, show: bool
) -> Iterator[Callable[[float], None] | None]:
    """A rich progress bar fed with fractions done, or None when the run is short."""
    if not show:
        yield None
        return
    with Progress(
        TextColumn(label),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=1.0)
        yield lambda done: bar.update(task, completed=done)


def _expected_contacts(scenario: Scenario) -> float:
    plan = scenario.plan
    first = sum(s.expected_count(plan.horizon_s) for s in plan.streams) + len(plan.replay)
    return first * scenario.replications


def run_scenario(scenario: Scenario, console: Console) -> Replications:
    """Replications of a scenario, with a progress bar when the run is long."""
    show = _expected_contacts(scenario) >= PROGRESS_FROM_CONTACTS
    with progress_bar(console, f"simulating {scenario.name}", show) as progress:
        return replicate(scenario.plan, scenario.replications, scenario.seed, progress)


def _simulate(scenario: Scenario, args: argparse.Namespace, console: Console) -> int:
    reps = run_scenario(scenario, console)
    _outputs(reps, scenario, args, console)
    return 0


def _outputs(
    reps: Replications,
    scenario: Scenario,
    args: argparse.Namespace,
    console: Console,
    extra: dict[str, Any] | None = None,
) -> None:
    if args.json:
        data = to_dict(reps, scenario.target_service_level)
        data.update(extra or {})
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        for table in summary_tables(reps, scenario):
            console.print(table)
    if args.csv is not None:
        write_csv(interval_rows(reps), args.csv)
        console.print(f"per-interval results: {args.csv}")
    if args.report is not None:
        from simulations.report import write_report

        write_report(reps, scenario, args.report)
        console.print(f"report: {args.report}")


def _headline(scenario: Scenario, args: argparse.Namespace, console: Console) -> int:
    from simulations.headline import headline_tables, run_headline, write_headline_plot

    with progress_bar(console, "silos vs omnichannel", True) as progress:
        result = run_headline(scenario, progress)
    if args.json:
        sys.stdout.write(json.dumps(result.as_dict(), indent=2) + "\n")
    else:
        for table in headline_tables(result):
            console.print(table)
    if args.report is not None:
        write_headline_plot(result, args.report)
        console.print(f"report: {args.report}")
    return 0


def _replay(args: argparse.Namespace, console: Console) -> int:
    from simulations.replay import bank_scenario, compare_tables, comparison

    if args.wrap_up < 0:
        raise InvalidArgument("--wrap-up", "must be a non-negative number of seconds")
    log_path = Path(args.replay_bank) if args.replay_bank else None
    scenario = _override(bank_scenario(log_path, wrap_up_s=args.wrap_up), args)
    reps = run_scenario(scenario, console)
    rows = comparison(reps, scenario)
    if not args.json:
        console.print(compare_tables(rows))
    _outputs(reps, scenario, args, console, extra={"log_vs_simulation": rows})
    return 0


def _validate(args: argparse.Namespace, console: Console) -> int:
    from simulations.history import default_bank_log
    from simulations.replay import bank_scenario, compare_tables, comparison
    from simulations.validation import cases_table, validate_cases

    seed = 1 if args.seed is None else args.seed
    with progress_bar(console, "Erlang C / Erlang A cases", True) as progress:
        rows = validate_cases(args.replications or 20, seed, progress)
    out: dict[str, Any] = {"erlang": rows, "bank": {}}
    if not args.json:
        console.print(cases_table(rows))
    bank_present = default_bank_log() is not None
    if not bank_present:
        console.print("bank log absent (../shared/data/): replay comparison skipped")
    for wrap_up in (0.0, 60.0) if bank_present else ():
        scenario = bank_scenario(seed=seed, wrap_up_s=wrap_up)
        reps = run_scenario(scenario, console)
        compared = comparison(reps, scenario)
        out["bank"][f"wrap_up_{wrap_up:.0f}s"] = compared
        if not args.json:
            table = compare_tables(compared)
            table.title = f"{table.title}, after-call work {wrap_up:.0f} s"
            console.print(table)
    if args.json:
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    within = sum(1 for r in rows if r["within"])
    console.print(
        f"{within} of {len(rows)} theory values within the simulated 95% CI "
        "(about 1 in 20 falls outside by chance)"
    )
    return 0 if within >= 0.9 * len(rows) else 1
