"""Turning a log row's date and time columns into seconds since the epoch.

Local wall-clock times are read as UTC: a log's own offsets do not matter to arrival profiles,
and the result is reproducible on any machine. A row whose times are only times of day takes
its day from a date column; a time earlier than the row's anchor (the first time of the row,
e.g. entering the voice menu) crossed midnight and belongs to the next day.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulations.history import ColumnMapping

_DAY_S = 86_400


class BadTime(ValueError):
    """A date or time cell that does not match its format; the reader adds file and line."""

    def __init__(self, column: str, problem: str) -> None:
        super().__init__(f"{column}: {problem}")
        self.column = column
        self.problem = problem


class TimeParser:
    """Parses the times of the rows of one log; remembers the dates it has seen (logs hold few)."""

    def __init__(self, columns: ColumnMapping) -> None:
        self._columns = columns
        self._days: dict[str, float] = {}

    def moment(self, row: dict[str, str], column: str) -> float:
        """Seconds since the epoch of `row[column]`; `BadTime` names the column at fault."""
        columns = self._columns
        if columns.date is None:
            return self._datetime(row[column].strip(), column)
        day = self._day(row[columns.date].strip(), columns.date)
        seconds = self.time_of_day(row[column].strip(), column)
        if columns.day_anchor is not None and column != columns.day_anchor:
            anchor = self.time_of_day(row[columns.day_anchor].strip(), columns.day_anchor)
            if seconds < anchor:
                seconds += _DAY_S
        return day + seconds

    def time_of_day(self, text: str, column: str) -> float:
        """Seconds after midnight of a time of day written in the mapping's `time_format`."""
        fmt = self._columns.time_format
        if fmt == "%H:%M:%S":  # the common case, ten times faster than strptime
            parts = text.split(":")
            if len(parts) == 3 and all(p.isdigit() for p in parts):
                hours, minutes, seconds = (int(p) for p in parts)
                if hours < 24 and minutes < 60 and seconds < 60:
                    return float(hours * 3600 + minutes * 60 + seconds)
            raise BadTime(column, f"bad time of day {text!r}, expected H:MM:SS")
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            raise BadTime(column, f"bad time {text!r}, expected {fmt}") from None
        return float(parsed.hour * 3600 + parsed.minute * 60 + parsed.second)

    def _day(self, text: str, column: str) -> float:
        known = self._days.get(text)
        if known is not None:
            return known
        fmt = self._columns.date_format
        try:
            parsed = datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            raise BadTime(column, f"bad date {text!r}, expected {fmt}") from None
        self._days[text] = parsed.timestamp()
        return self._days[text]

    def _datetime(self, text: str, column: str) -> float:
        fmt = self._columns.time_format
        try:
            if fmt == "epoch":
                return float(text)
            parsed = datetime.fromisoformat(text) if fmt == "iso" else datetime.strptime(text, fmt)
        except ValueError:
            raise BadTime(column, f"bad date and time {text!r}, expected {fmt}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
