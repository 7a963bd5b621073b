"""Staffing per interval from a forecast: how many agents each interval needs to meet a target.

A forecast is a CSV file with a header and one row per interval (and issue)::

    interval_start,issue,contacts,aht_s,patience_s
    2024-03-04T09:00,billing,120,240,90
    2024-03-04T09:00,tech,40,420,
    2024-03-04T09:15,billing,135,240,90

- ``interval_start`` (required): an ISO date and time (``2024-03-04T09:00``) or a time of
  day (``09:00``); the interval lasts ``interval_minutes`` (15 unless told).
- ``issue`` (optional): rows of one interval with different issues are staffed as separate
  pools, or as one blended pool with ``pooled=True``.
- ``contacts`` (required): contacts expected in the interval, ≥ 0 (need not be whole).
- ``aht_s`` (required): mean handle time in seconds, > 0.
- ``patience_s`` (optional): mean patience in seconds; when present (cell not empty) the
  interval is staffed with Erlang A (abandonment), else with Erlang C or a default patience.

Any other column is ignored. A bad cell raises `ForecastError` naming file, line and column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path

from router.errors import InvalidArgument, RoutingError
from simulations.erlang import StaffingResult, staff

REQUIRED_COLUMNS = ("interval_start", "contacts", "aht_s")


class ForecastError(InvalidArgument):
    """A forecast file is unreadable; the message names the file, line and column."""

    def __init__(self, path: Path, line: int, field: str, problem: str) -> None:
        where = f"{path.name}: line {line}" if line else str(path)
        RoutingError.__init__(self, f"{where}: {field}: {problem}")
        self.path = path
        self.line = line
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ForecastRow:
    """Expected load of one interval (and issue)."""

    interval_start: str
    issue: str | None
    contacts: float
    aht_s: float
    patience_s: float | None = None
    line: int = 0  # where it came from, for messages


@dataclass(frozen=True, slots=True)
class Target:
    """What a planner asks of every interval."""

    target_s: float  # answer within this many seconds...
    service_level: float  # ...this share of contacts, in (0, 1]
    max_occupancy: float | None = None
    shrinkage: float = 0.0  # share of paid time not on the phones
    patience_s: float | None = None  # default patience for rows that give none


@dataclass(frozen=True, slots=True)
class IntervalStaffing:
    """The staffing answer for one forecast row."""

    row: ForecastRow
    result: StaffingResult


def _number(text: str, path: Path, line: int, column: str, *, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ForecastError(path, line, column, f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        kind = "a positive" if positive else "a non-negative"
        raise ForecastError(path, line, column, f"must be {kind} number, got {text!r}")
    return value


def _interval_start(text: str, path: Path, line: int) -> str:
    for parse in (datetime.fromisoformat, time.fromisoformat):
        try:
            parse(text)
        except ValueError:
            continue
        return text
    raise ForecastError(
        path, line, "interval_start", f"not an ISO date-time or time of day: {text!r}"
    )


def read_forecast(path: Path) -> list[ForecastRow]:
    """Every row of a forecast CSV (format in the module docstring), validated cell by cell."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            if not header:
                raise ForecastError(path, 1, "header", "the file is empty")
            for column in REQUIRED_COLUMNS:
                if column not in header:
                    raise ForecastError(path, 1, column, f"column missing from header {header}")
            rows = [_row(raw, path, reader.line_num, len(header)) for raw in reader]
    except FileNotFoundError:
        raise ForecastError(path, 0, "path", f"no such file: {path}") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise ForecastError(path, 0, "file", f"not a readable CSV: {error}") from None
    if not rows:
        raise ForecastError(path, 2, "contacts", "the forecast has no rows")
    return rows


def _row(raw: dict[str, str], path: Path, line: int, width: int) -> ForecastRow:
    if None in raw or len(raw) < width or any(v is None for v in raw.values()):
        raise ForecastError(path, line, "row", "has a different number of fields than the header")
    patience = (raw.get("patience_s") or "").strip()
    return ForecastRow(
        interval_start=_interval_start(raw["interval_start"].strip(), path, line),
        issue=(raw.get("issue") or "").strip() or None,
        contacts=_number(raw["contacts"].strip(), path, line, "contacts", positive=False),
        aht_s=_number(raw["aht_s"].strip(), path, line, "aht_s", positive=True),
        patience_s=_number(patience, path, line, "patience_s", positive=True) if patience else None,
        line=line,
    )


def pool(rows: Sequence[ForecastRow]) -> list[ForecastRow]:
    """One blended row per interval: contacts add up, handle time is contact-weighted, and
    the abandonment rate (1 / patience) is contact-weighted when every row gives a patience."""
    groups: dict[str, list[ForecastRow]] = {}
    for row in rows:
        groups.setdefault(row.interval_start, []).append(row)
    pooled = []
    for start, members in groups.items():
        contacts = sum(r.contacts for r in members)
        weights = [r.contacts if contacts > 0 else 1.0 for r in members]
        total = sum(weights)
        aht_s = sum(w * r.aht_s for w, r in zip(weights, members, strict=True)) / total
        patience_s = None
        if all(r.patience_s is not None for r in members):
            rate = sum(w / (r.patience_s or 1.0) for w, r in zip(weights, members, strict=True))
            patience_s = total / rate
        pooled.append(ForecastRow(start, None, contacts, aht_s, patience_s, members[0].line))
    return pooled


def staff_interval(row: ForecastRow, interval_s: float, target: Target) -> StaffingResult:
    """Fewest agents for one row: its contacts spread evenly over an interval of `interval_s`."""
    if interval_s <= 0:
        raise InvalidArgument("interval_s", f"must be positive, got {interval_s!r}")
    return staff(
        row.contacts / interval_s,
        row.aht_s,
        target.target_s,
        target.service_level,
        patience_s=row.patience_s if row.patience_s is not None else target.patience_s,
        max_occupancy=target.max_occupancy,
        shrinkage=target.shrinkage,
    )


def staff_forecast(
    rows: Sequence[ForecastRow], interval_s: float, target: Target, *, pooled: bool = False
) -> list[IntervalStaffing]:
    """Staffing for every row (or every interval, when `pooled`), in forecast order."""
    chosen = pool(rows) if pooled else list(rows)
    return [IntervalStaffing(row, staff_interval(row, interval_s, target)) for row in chosen]


def agent_hours(plan: Sequence[IntervalStaffing], interval_s: float) -> float:
    """Scheduled agent-hours over the whole plan: what the forecast costs in paid time."""
    return sum(item.result.agents_scheduled for item in plan) * interval_s / 3600.0


def as_dict(item: IntervalStaffing, interval_s: float) -> dict[str, object]:
    """A JSON-ready record of one interval's staffing (infinite ASA becomes None)."""
    result = item.result
    return {
        "interval_start": item.row.interval_start,
        "issue": item.row.issue,
        "contacts": item.row.contacts,
        "rate_per_hour": item.row.contacts * 3600.0 / interval_s,
        "aht_s": item.row.aht_s,
        "patience_s": item.row.patience_s,
        "model": result.model,
        "load_erlangs": result.load_erlangs,
        "agents_required": result.agents_required,
        "agents_scheduled": result.agents_scheduled,
        "service_level": result.service_level,
        "asa_s": result.asa_s if math.isfinite(result.asa_s) else None,
        "p_wait": result.p_wait,
        "occupancy": result.occupancy,
        "abandon_rate": result.abandon_rate,
    }
