"""Contact-log import: read a CSV log of past contacts into `LoggedContact` values.

A `ColumnMapping` says which column holds what; two are built in:

- ``"bank"`` (`BANK_PRESET`): the Technion SEE "Anonymous Bank" log in ``../shared/data/``
  (gzip CSV; ``date`` as ``1999-08-01``, times of day as ``7:48:27``; a call's arrival is its
  queue entry ``q_start``, or ``vru_exit`` when it never queued; times earlier than
  ``vru_entry`` belong to the next day; ``AGENT``/``HANG``/``PHANTOM``; ``NO_SERVER``;
  ``customer_id`` 0 = unknown; every call is voice). Calls that hung up in the voice menu
  before ever queueing never asked for an agent and are dropped (counted in `LogRead`).
- ``"generic"`` (`GENERIC_PRESET`): one row per contact, with columns
  ``id,arrived_at,channel,issue,priority,customer_id,wait_s,outcome,handle_s,agent_id``;
  ``arrived_at`` as ``2024-03-04 09:00:12``; outcome ``served``/``abandoned``/``phantom``;
  empty ``customer_id``/``agent_id`` = none. ``simulations/examples/small_log.csv`` is one.

Any other log is described in YAML with the field names of `ColumnMapping`
(``ColumnMapping.from_yaml``; ``simulations/examples/small_log_mapping.yaml`` is an example)::

    arrival: created            # arrival time column (a datetime, or a time of day + `date`)
    time_format: iso            # "iso", "epoch" (seconds) or a strptime format
    issue: intent
    outcome: status
    outcome_values: {done: served, dropped: abandoned}
    wait: queue_seconds
    handle: talk_seconds
    agent: handled_by
    channel: medium             # optional; else `default_channel`
    id_columns: [ticket]        # optional; else the line number

A bad row raises `LogError` naming the file, line and column. A real log has a few junk rows,
so by default they are skipped and counted (`strict=True` raises at the first); more than
`max_bad_fraction` of bad rows is an error either way.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any

import structlog
import yaml

from router.errors import InvalidArgument, RoutingError
from simulations.profile import (
    HandleFit,
    LogSummary,
    PatienceFit,
    Profile,
    derive_profile,
    summarize,
)
from simulations.timeparse import BadTime, TimeParser

log = structlog.get_logger(__name__)

__all__ = [
    "BANK_PRESET",
    "GENERIC_PRESET",
    "PRESETS",
    "ColumnMapping",
    "HandleFit",
    "LogError",
    "LogRead",
    "LogSummary",
    "LoggedContact",
    "PatienceFit",
    "Profile",
    "default_bank_log",
    "derive_profile",
    "read_log",
    "read_log_with_report",
    "summarize",
]

BANK_LOG_NAME = "anonymous_bank_1999-08-01_15.csv.gz"
OUTCOMES = ("served", "abandoned", "phantom")


class LogError(InvalidArgument):
    """A contact log is unreadable; the message names the file, line and column."""

    def __init__(self, path: Path, line: int, field: str, problem: str) -> None:
        where = f"{path.name}: line {line}" if line else str(path)
        RoutingError.__init__(self, f"{where}: {field}: {problem}")
        self.path = path
        self.line = line
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class LoggedContact:
    """One contact of a log: when it arrived, what it was about, how it ended."""

    id: str
    arrived_at: float  # seconds since the epoch (local times read as UTC); queue entry
    issue: str
    channel: str
    priority: int
    customer_id: str | None
    wait_s: float  # time in queue (0 when answered at once)
    outcome: str  # "served" | "abandoned" | "phantom"
    handle_s: float | None  # service time when served
    agent_id: str | None  # who served it
    queued: bool = True  # False when answered without ever waiting in the queue

    @property
    def service_start(self) -> float:
        """When an agent picked it up (or would have): arrival plus wait."""
        return self.arrived_at + self.wait_s


@dataclass(frozen=True)
class ColumnMapping:
    """Which CSV column holds which contact field, and how its values are written."""

    arrival: str
    issue: str
    outcome: str
    wait: str | None = None  # seconds; absent = 0
    handle: str | None = None  # seconds; needed for served contacts
    agent: str | None = None
    channel: str | None = None
    priority: str | None = None
    customer: str | None = None
    id_columns: tuple[str, ...] = ()  # joined with "-"; none = the line number
    date: str | None = None  # when `arrival` holds only a time of day
    queue_start: str | None = None  # time of day the contact queued; else `arrival` is used
    day_anchor: str | None = None  # first time of day of a row; earlier times are next day
    date_format: str = "%Y-%m-%d"
    time_format: str = "%Y-%m-%d %H:%M:%S"  # "iso", "epoch", or strptime (time of day + date)
    not_queued_value: str = ""  # `queue_start` value meaning "never queued"
    default_channel: str = "voice"
    outcome_values: Mapping[str, str] = field(
        default_factory=lambda: {name: name for name in OUTCOMES}
    )
    no_agent_values: tuple[str, ...] = ("",)
    unknown_customer_values: tuple[str, ...] = ("",)
    delimiter: str = ","

    def __post_init__(self) -> None:
        for raw, outcome in self.outcome_values.items():
            if outcome not in OUTCOMES:
                raise InvalidArgument(f"outcome_values.{raw}", f"must be one of {OUTCOMES}")
        if self.queue_start is not None and self.date is None:
            raise InvalidArgument("queue_start", "needs `date`: it is a time of day")

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column this mapping reads, in a stable order."""
        named = (self.arrival, self.issue, self.outcome, self.wait, self.handle, self.agent)
        more = (self.channel, self.priority, self.customer, self.date, self.queue_start)
        listed = (*named, *more, self.day_anchor, *self.id_columns)
        return tuple(dict.fromkeys(c for c in listed if c is not None))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnMapping:
        """A mapping from plain data (parsed YAML); unknown keys are refused by name."""
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise InvalidArgument(f"mapping.{key}", f"unknown key; known: {sorted(known)}")
        values = dict(data)
        for key in ("id_columns", "no_agent_values", "unknown_customer_values"):
            if key in values:
                values[key] = tuple(str(v) for v in values[key])
        for key in ("arrival", "issue", "outcome"):
            if key not in values:
                raise InvalidArgument(f"mapping.{key}", "is required")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: Path) -> ColumnMapping:
        """Read a mapping from a YAML file of `ColumnMapping` field names."""
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise InvalidArgument(str(path), "must hold a mapping of field names to columns")
        return cls.from_dict(data)


BANK_PRESET = ColumnMapping(
    arrival="vru_exit",
    issue="type",
    outcome="outcome",
    wait="q_time",
    handle="ser_time",
    agent="server",
    priority="priority",
    customer="customer_id",
    id_columns=("vru_line", "call_id"),
    date="date",
    queue_start="q_start",
    day_anchor="vru_entry",
    time_format="%H:%M:%S",
    not_queued_value="0:00:00",
    default_channel="voice",
    outcome_values={"AGENT": "served", "HANG": "abandoned", "PHANTOM": "phantom"},
    no_agent_values=("NO_SERVER", ""),
    unknown_customer_values=("0", ""),
)

GENERIC_PRESET = ColumnMapping(
    arrival="arrived_at",
    issue="issue",
    outcome="outcome",
    wait="wait_s",
    handle="handle_s",
    agent="agent_id",
    channel="channel",
    priority="priority",
    customer="customer_id",
    id_columns=("id",),
)

PRESETS: Mapping[str, ColumnMapping] = {"bank": BANK_PRESET, "generic": GENERIC_PRESET}


def default_bank_log() -> Path | None:
    """The bank log in ``../shared/data/`` beside the repository, or None when absent."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data" / BANK_LOG_NAME
    return path if path.is_file() else None


@dataclass(frozen=True, slots=True)
class LogRead:
    """What reading a log gave: the contacts, and the rows left out with why."""

    contacts: tuple[LoggedContact, ...]
    rows: int
    skipped: tuple[LogError, ...]  # junk rows (non-strict reading)
    unqueued_abandons: int  # hung up before queueing (bank: in the voice menu), dropped


def _open_text(path: Path) -> IO[str]:
    """The log as text; a ``.gz`` file is decompressed on the fly."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _resolve(mapping: ColumnMapping | str) -> ColumnMapping:
    if isinstance(mapping, ColumnMapping):
        return mapping
    if mapping not in PRESETS:
        raise InvalidArgument("mapping", f"unknown preset {mapping!r}; known: {sorted(PRESETS)}")
    return PRESETS[mapping]


def read_log_with_report(
    path: Path,
    mapping: ColumnMapping | str = "bank",
    *,
    strict: bool = False,
    max_bad_fraction: float = 0.05,
    keep_unqueued_abandons: bool = False,
) -> LogRead:
    """Read every contact of a CSV log (gzip when it ends in ``.gz``), and account for the rest."""
    columns = _resolve(mapping)
    path = Path(path)
    if not path.is_file():
        raise LogError(path, 0, "path", f"no such file: {path}")
    parser = TimeParser(columns)
    drop_unqueued_abandons = columns.queue_start is not None and not keep_unqueued_abandons
    contacts: list[LoggedContact] = []
    skipped: list[LogError] = []
    unqueued_abandons = rows = 0
    try:
        with _open_text(path) as handle:
            reader = csv.DictReader(handle, delimiter=columns.delimiter)
            header = reader.fieldnames
            if not header:
                raise LogError(path, 1, "header", "the file is empty")
            for column in columns.columns:
                if column not in header:
                    raise LogError(path, 1, column, f"column missing from header {header}")
            for row in reader:
                rows += 1
                try:
                    contact = _contact(row, columns, parser, path, reader.line_num, len(header))
                except LogError as error:
                    if strict:
                        raise
                    skipped.append(error)
                    continue
                if drop_unqueued_abandons and contact.outcome == "abandoned" and not contact.queued:
                    unqueued_abandons += 1
                    continue
                contacts.append(contact)
    except (UnicodeDecodeError, gzip.BadGzipFile, csv.Error) as error:
        raise LogError(path, 0, "file", f"not a readable CSV: {error}") from error
    if rows and len(skipped) > max_bad_fraction * rows:
        first = skipped[0]
        raise LogError(
            path, first.line, first.field, f"{first.problem} (and {len(skipped) - 1} more bad rows)"
        )
    if skipped:
        log.warning("log_rows_skipped", path=str(path), skipped=len(skipped), first=str(skipped[0]))
    return LogRead(tuple(contacts), rows, tuple(skipped), unqueued_abandons)


def read_log(
    path: Path, mapping: ColumnMapping | str = "bank", *, strict: bool = False
) -> list[LoggedContact]:
    """The contacts of a CSV log ("bank" = `BANK_PRESET`); junk rows are skipped and counted
    in a warning unless `strict`, in which case the first raises `LogError`."""
    return list(read_log_with_report(path, mapping, strict=strict).contacts)


def _seconds(row: dict[str, str], column: str | None, path: Path, line: int) -> float:
    if column is None:
        return 0.0
    text = row[column].strip()
    try:
        value = float(text)
    except ValueError:
        raise LogError(path, line, column, f"not a number of seconds: {text!r}") from None
    if not value >= 0:
        raise LogError(path, line, column, f"must be a non-negative number, got {text!r}")
    return value


def _contact(
    row: dict[str, str],
    columns: ColumnMapping,
    parser: TimeParser,
    path: Path,
    line: int,
    width: int,
) -> LoggedContact:
    if None in row or len(row) < width or any(v is None for v in row.values()):
        raise LogError(path, line, "row", "has a different number of fields than the header")
    raw_outcome = row[columns.outcome].strip()
    outcome = columns.outcome_values.get(raw_outcome)
    if outcome is None:
        expected = sorted(columns.outcome_values)
        raise LogError(path, line, columns.outcome, f"unknown {raw_outcome!r}, not in {expected}")
    issue = row[columns.issue].strip()
    if not issue:
        raise LogError(path, line, columns.issue, "must not be empty")
    wait_s = _seconds(row, columns.wait, path, line)
    queued = wait_s > 0
    if columns.queue_start is not None:
        queued = queued or row[columns.queue_start].strip() != columns.not_queued_value
    arrival_column = columns.queue_start if queued and columns.queue_start else columns.arrival
    try:
        arrived_at = parser.moment(row, arrival_column)
    except BadTime as error:
        raise LogError(path, line, error.column, error.problem) from None
    handle_s = agent_id = None
    if outcome == "served":
        if columns.handle is None:
            raise LogError(path, line, "handle", "served contacts need a handle-time column")
        handle_s = _seconds(row, columns.handle, path, line)
        agent = row[columns.agent].strip() if columns.agent else ""
        agent_id = None if agent in columns.no_agent_values else agent
    priority = 0
    if columns.priority is not None:
        text = row[columns.priority].strip()
        if not text.isdigit():
            raise LogError(path, line, columns.priority, f"not a whole number: {text!r}")
        priority = int(text)
    customer = row[columns.customer].strip() if columns.customer else ""
    channel = row[columns.channel].strip().lower() if columns.channel else ""
    ids = [row[c].strip() for c in columns.id_columns]
    return LoggedContact(
        id="-".join(ids) if ids else str(line),
        arrived_at=arrived_at,
        issue=issue,
        channel=channel or columns.default_channel,
        priority=priority,
        customer_id=None if customer in columns.unknown_customer_values else customer,
        wait_s=wait_s,
        outcome=outcome,
        handle_s=handle_s,
        agent_id=agent_id,
        queued=queued,
    )
