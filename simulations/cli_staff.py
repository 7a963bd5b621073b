"""``omniroute staff``: the fewest agents meeting a service-level target, for one interval or
for every interval of a forecast file, as a table or as JSON.

Examples::

    omniroute staff --rate-per-hour 360 --aht 240 --target 20 --sl 0.8
    omniroute staff --rate-per-hour 360 --aht 240 --patience 120 --shrinkage 0.3 --json
    omniroute staff --forecast forecast.csv --target 20 --sl 0.8 --max-occupancy 0.9 --pooled

The forecast format is described in `simulations.staffing`. Exit codes: 0 done, 2 bad
arguments or a bad file (one message naming the line and field, no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from router import logs
from router.errors import InvalidArgument
from simulations.staffing import (
    ForecastRow,
    IntervalStaffing,
    Target,
    agent_hours,
    as_dict,
    read_forecast,
    staff_forecast,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omniroute staff",
        description="Agents needed per interval (Erlang C, or Erlang A with --patience).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--rate-per-hour", type=float, help="contacts arriving per hour")
    source.add_argument("--forecast", metavar="FILE", help="forecast CSV, one row per interval")
    parser.add_argument("--aht", type=float, help="mean handle time, seconds (with --rate)")
    parser.add_argument("--target", type=float, default=20.0, help="answer within (s) [20]")
    parser.add_argument("--sl", type=float, default=0.8, help="share answered in time [0.8]")
    parser.add_argument("--patience", type=float, help="mean patience, seconds: Erlang A")
    parser.add_argument("--max-occupancy", type=float, help="cap on agent occupancy (0-1]")
    parser.add_argument("--shrinkage", type=float, default=0.0, help="paid time off phones")
    parser.add_argument("--interval-minutes", type=float, default=15.0, help="[15]")
    parser.add_argument("--pooled", action="store_true", help="blend issues of an interval")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _plan(args: argparse.Namespace) -> tuple[list[IntervalStaffing], float]:
    interval_s = args.interval_minutes * 60.0
    if not interval_s > 0:
        raise InvalidArgument("--interval-minutes", "must be positive")
    target = Target(
        target_s=args.target,
        service_level=args.sl,
        max_occupancy=args.max_occupancy,
        shrinkage=args.shrinkage,
        patience_s=args.patience,
    )
    if args.forecast is not None:
        rows = read_forecast(Path(args.forecast))
    else:
        if args.aht is None:
            raise InvalidArgument("--aht", "is required with --rate-per-hour")
        if not args.rate_per_hour >= 0:
            raise InvalidArgument("--rate-per-hour", "must be a non-negative number")
        contacts = args.rate_per_hour * interval_s / 3600.0
        rows = [ForecastRow("interval", None, contacts, args.aht, None, 0)]
    return staff_forecast(rows, interval_s, target, pooled=args.pooled), interval_s


def _table(plan: Sequence[IntervalStaffing], interval_s: float) -> Table:
    has_issue = any(item.row.issue for item in plan)
    has_abandon = any(item.result.model == "erlang_a" for item in plan)
    table = Table(title="Staffing", caption=f"intervals of {interval_s / 60:g} min")
    headers = ["interval", *(["issue"] if has_issue else []), "contacts", "rate/h", "AHT s"]
    headers += ["load Erl", "required", "scheduled", "SL", "ASA s", "occupancy"]
    headers += ["abandon"] if has_abandon else []
    for header in headers:
        table.add_column(header, justify="left" if header in ("interval", "issue") else "right")
    for item in plan:
        row, result = item.row, item.result
        cells = [row.interval_start, *([row.issue or "-"] if has_issue else [])]
        cells += [f"{row.contacts:g}", f"{row.contacts * 3600 / interval_s:.1f}", f"{row.aht_s:g}"]
        cells += [f"{result.load_erlangs:.2f}", str(result.agents_required)]
        cells += [str(result.agents_scheduled), f"{result.service_level:.1%}"]
        cells += [f"{result.asa_s:.1f}", f"{result.occupancy:.1%}"]
        cells += [f"{result.abandon_rate:.1%}"] if has_abandon else []
        table.add_row(*cells)
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``omniroute staff`` with `argv` (without the program and subcommand names)."""
    logs.configure(json=False, level="warning")  # on stderr: stdout is for results
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed its message
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        plan, interval_s = _plan(args)
    except InvalidArgument as error:
        sys.stderr.write(f"omniroute staff: error: {error}\n")
        return 2
    if args.json:
        document = {
            "interval_minutes": args.interval_minutes,
            "target": {
                "target_s": args.target,
                "service_level": args.sl,
                "max_occupancy": args.max_occupancy,
                "shrinkage": args.shrinkage,
                "patience_s": args.patience,
            },
            "intervals": [as_dict(item, interval_s) for item in plan],
            "peak_agents_scheduled": max(item.result.agents_scheduled for item in plan),
            "agent_hours_scheduled": agent_hours(plan, interval_s),
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return 0
    # Piped output has no terminal width; a wide page beats a table of ellipses.
    console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(_table(plan, interval_s))
    peak = max(item.result.agents_scheduled for item in plan)
    console.print(
        f"peak {peak} agents scheduled; {agent_hours(plan, interval_s):.1f} agent-hours scheduled"
    )
    return 0
