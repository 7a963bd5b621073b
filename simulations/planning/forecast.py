"""Forecast contacts per interval, issue and channel for the days to plan, from a contact log.

Methods (``method``):

* ``profile`` -- weekday × interval profile with level and trend. A day's volume is the mean
  volume of its weekday in the history (level), times a trend factor (last 7 days over the 7
  before, damped by half, only with two weeks of history); its intraday shape pools every
  history day whose weekday has a similar shape (correlation ≥ 0.9: the working days of the
  week usually share one) and is smoothed over neighbouring intervals; the issue × channel
  mix per interval is pooled the same way with a wider smoothing. Pooling is why it beats the
  naive baseline: one day's interval counts are mostly Poisson noise.
* ``smoothing`` -- the same, with each weekday's level exponentially smoothed (α = 0.5) so
  recent weeks weigh more.
* ``naive`` -- the baseline: the same weekday of the week before, interval by interval.

`backtest` holds out the last days of the log, forecasts them from the rest and reports the
weighted absolute percentage error (WAPE = Σ|forecast − actual| / Σ actual) per interval and
issue, per interval in total, and per day, for the method and the naive baseline side by side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from router.errors import InvalidArgument
from simulations.history import LoggedContact
from simulations.profile import fit_handle, fit_patience
from simulations.staffing import ForecastRow

METHODS = ("profile", "smoothing", "naive")
DAY_S = 86_400
Cell = tuple[str, str]  # (issue, channel)
Array = NDArray[np.float64]


@dataclass(frozen=True)
class History:
    """Contacts counted per day and interval for each (issue, channel), from `first` on."""

    first: date
    interval_s: int
    counts: Mapping[Cell, Array]  # shape (days, intervals per day)

    @property
    def days(self) -> int:
        """Calendar days covered."""
        return next(iter(self.counts.values())).shape[0] if self.counts else 0

    def total(self) -> Array:
        """All contacts per day and interval."""
        return np.asarray(np.sum(list(self.counts.values()), axis=0), dtype=np.float64)

    def head(self, days: int) -> History:
        """The first `days` days only (to hold the rest out)."""
        return History(self.first, self.interval_s, {k: v[:days] for k, v in self.counts.items()})


@dataclass(frozen=True)
class Forecast:
    """Expected contacts per interval for each (issue, channel), with what serving takes."""

    start: date
    days: int
    interval_s: int
    volumes: Mapping[Cell, Array]  # shape (days × intervals per day,)
    aht_s: Mapping[str, float]
    patience_s: Mapping[str, float | None]
    handle_samples_s: Mapping[str, tuple[float, ...]]
    method: str

    def total(self) -> Array:
        """All contacts per interval."""
        return np.asarray(np.sum(list(self.volumes.values()), axis=0), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Accuracy:
    """Errors on held-out days: the method beside the naive baseline."""

    method: str
    holdout: tuple[str, ...]  # ISO dates
    wape_cells: float  # per interval × issue × channel
    wape_intervals: float  # per interval, all issues together
    wape_days: float  # per day
    naive_wape_cells: float
    naive_wape_intervals: float
    naive_wape_days: float

    def as_dict(self) -> dict[str, object]:
        """JSON-ready figures."""
        return {k: getattr(self, k) for k in self.__slots__}


def count_history(contacts: Sequence[LoggedContact], interval_s: int) -> History:
    """Count contacts per day, interval and (issue, channel); phantoms still asked for an agent."""
    if not contacts:
        raise InvalidArgument("demand.log", "the log holds no contacts")
    if DAY_S % interval_s:
        raise InvalidArgument("interval", f"must divide a day, got {interval_s}")
    stamps = np.array([c.arrived_at for c in contacts])
    first_day = math.floor(stamps.min() / DAY_S)
    days = math.floor(stamps.max() / DAY_S) - first_day + 1
    per_day = DAY_S // interval_s
    day_index = (np.floor(stamps / DAY_S) - first_day).astype(int)
    slot = ((stamps % DAY_S) // interval_s).astype(int)
    keys = [(c.issue.lower(), c.channel) for c in contacts]
    counts: dict[Cell, Array] = {}
    for cell in sorted(set(keys)):
        mask = np.array([k == cell for k in keys])
        grid = np.zeros((days, per_day))
        np.add.at(grid, (day_index[mask], slot[mask]), 1.0)
        counts[cell] = grid
    first = datetime.fromtimestamp(first_day * DAY_S, UTC).date()
    return History(first, interval_s, counts)


def _smooth(values: Array, width: int) -> Array:
    """Triangular moving average over `width` intervals each side (edges renormalised)."""
    if width <= 0:
        return values
    kernel = np.concatenate((np.arange(1, width + 2), np.arange(width, 0, -1))).astype(float)
    padded = np.convolve(values, kernel, mode="same")
    norm = np.convolve(np.ones_like(values), kernel, mode="same")
    return np.asarray(padded / norm, dtype=np.float64)


def _weekday_levels(totals: Array, weekdays: list[int], alpha: float | None) -> dict[int, float]:
    """Daily volume per weekday: the mean of its days, or their exponential smoothing."""
    levels: dict[int, float] = {}
    for w in range(7):
        series = [float(totals[d]) for d in range(len(weekdays)) if weekdays[d] == w]
        if not series:
            continue
        if alpha is None:
            levels[w] = sum(series) / len(series)
        else:
            level = series[0]
            for value in series[1:]:
                level = alpha * value + (1 - alpha) * level
            levels[w] = level
    overall = float(np.mean(totals)) if len(totals) else 0.0
    return {w: levels.get(w, overall) for w in range(7)}


def _trend(totals: Array, levels: Mapping[int, float], weekdays: Sequence[int]) -> float:
    """Level and trend: the last week's volume over what the weekday levels say of it (the
    current level), times damped week-over-week growth when two full weeks are known."""
    if len(totals) < 7:
        return 1.0
    expected = sum(levels[w] for w in weekdays[-7:])
    level = float(totals[-7:].sum() / expected) if expected > 0 else 1.0
    if len(totals) < 14 or totals[-14:-7].sum() <= 0:
        return level
    return level * float(1.0 + 0.5 * (totals[-7:].sum() / totals[-14:-7].sum() - 1.0))


def forecast_history(
    history: History, start: date, days: int, method: str = "profile"
) -> dict[Cell, Array]:
    """Contacts per interval for `days` days from `start`, by `method` (module docstring)."""
    if method not in METHODS:
        raise InvalidArgument(
            "demand.method", f"must be one of {', '.join(METHODS)}, got {method!r}"
        )
    per_day = DAY_S // history.interval_s
    offsets = [(start - history.first).days + k for k in range(days)]
    if method == "naive":
        out = {}
        for cell, grid in history.counts.items():
            rows = []
            for offset in offsets:
                back = offset - 7 * max(1, math.ceil((offset - history.days + 1) / 7))
                if back < 0:
                    raise InvalidArgument(
                        "demand.holdout_days", "the naive baseline needs a week of history before"
                    )
                rows.append(grid[back])
            out[cell] = np.concatenate(rows)
        return out
    weekdays = [(history.first + timedelta(days=d)).weekday() for d in range(history.days)]
    total = history.total()
    daily = total.sum(axis=1)
    levels = _weekday_levels(daily, weekdays, 0.5 if method == "smoothing" else None)
    trend = _trend(daily, levels, weekdays)
    raw_shape = {}
    for w in set(weekdays):
        rows = total[[d for d in range(history.days) if weekdays[d] == w]].sum(axis=0)
        raw_shape[w] = rows / rows.sum() if rows.sum() > 0 else np.full(per_day, 1.0 / per_day)
    out = {cell: np.zeros(days * per_day) for cell in history.counts}
    for k in range(days):
        w = (start + timedelta(days=k)).weekday()
        similar = _similar_days(raw_shape, w, weekdays)
        pooled = total[similar].sum(axis=0)
        shape = _smooth(pooled, 1)
        shape = shape / shape.sum() if shape.sum() > 0 else shape
        day_volume = levels[w] * trend * shape
        mix_total = _smooth(pooled, 3)
        for cell, grid in history.counts.items():
            share = np.divide(
                _smooth(grid[similar].sum(axis=0), 3),
                mix_total,
                out=np.zeros(per_day),
                where=mix_total > 0,
            )
            out[cell][k * per_day : (k + 1) * per_day] = day_volume * share
    return out


def _similar_days(shapes: Mapping[int, Array], w: int, weekdays: list[int]) -> list[int]:
    """History days whose weekday's shape correlates ≥ 0.9 with weekday `w`'s."""
    if w not in shapes:
        return list(range(len(weekdays)))
    alike = {v for v, s in shapes.items() if float(np.corrcoef(shapes[w], s)[0, 1]) >= 0.9}
    return [d for d, v in enumerate(weekdays) if v in alike | {w}]


def _wape(forecast: Array, actual: Array) -> float:
    total = float(np.abs(actual).sum())
    return float(np.abs(forecast - actual).sum()) / total if total > 0 else math.nan


def backtest(history: History, holdout_days: int, method: str = "profile") -> Accuracy:
    """Forecast the last `holdout_days` of the history from the rest; errors beside naive."""
    if not 1 <= holdout_days <= history.days - 7:
        raise InvalidArgument(
            "demand.holdout_days",
            f"must be 1..{history.days - 7} (a week of history must remain), got {holdout_days}",
        )
    train = history.head(history.days - holdout_days)
    start = history.first + timedelta(days=train.days)
    actual = {c: g[train.days :].reshape(-1) for c, g in history.counts.items()}
    figures = []
    for name in (method, "naive"):
        predicted = forecast_history(train, start, holdout_days, name)
        cells = _wape(
            np.concatenate(list(predicted.values())), np.concatenate(list(actual.values()))
        )
        f_total = np.sum(list(predicted.values()), axis=0)
        a_total = np.sum(list(actual.values()), axis=0)
        by_day = _wape(
            f_total.reshape(holdout_days, -1).sum(1), a_total.reshape(holdout_days, -1).sum(1)
        )
        figures.append((cells, _wape(f_total, a_total), by_day))
    days = tuple((start + timedelta(days=k)).isoformat() for k in range(holdout_days))
    (c, i, d), (nc, ni, nd) = figures
    return Accuracy(method, days, c, i, d, nc, ni, nd)


def forecast_log(
    contacts: Sequence[LoggedContact], interval_s: int, start: date | None, days: int, method: str
) -> Forecast:
    """The forecast from a whole log, with handle times and patience per issue from it."""
    history = count_history(contacts, interval_s)
    first_day = start or history.first + timedelta(days=history.days)
    volumes = forecast_history(history, first_day, days, method)
    handles: dict[str, list[float]] = {}
    waits: dict[str, list[tuple[float, bool]]] = {}
    for c in contacts:
        issue = c.issue.lower()
        if c.outcome == "served" and c.handle_s is not None:
            handles.setdefault(issue, []).append(c.handle_s)
        if c.outcome != "phantom":
            waits.setdefault(issue, []).append((c.wait_s, c.outcome == "abandoned"))
    aht = {i: fit_handle(s).mean_s for i, s in handles.items()}
    patience: dict[str, float | None] = {}
    for issue, pairs in waits.items():
        fit = fit_patience([w for w, _ in pairs], [a for _, a in pairs])
        patience[issue] = fit.mean_s if math.isfinite(fit.mean_s) else None
    for issue, _ in volumes:
        if issue not in aht:
            aht[issue] = float(np.mean([v for v in aht.values()])) if aht else 300.0
    return Forecast(
        start=first_day,
        days=days,
        interval_s=interval_s,
        volumes=volumes,
        aht_s=aht,
        patience_s=patience,
        handle_samples_s={i: tuple(s) for i, s in handles.items()},
        method=method,
    )


def forecast_rows(rows: Sequence[ForecastRow], interval_s: int, days: int) -> Forecast:
    """A forecast from the staffing CSV rows (``interval_start`` as ISO date-times); each
    issue's handle time and patience are its contact-weighted means over the rows."""
    moments = []
    for row in rows:
        try:
            moments.append(datetime.fromisoformat(row.interval_start))
        except ValueError:
            raise InvalidArgument(
                f"demand.forecast line {row.line}.interval_start",
                f"a plan needs dates: {row.interval_start!r} is a time of day only",
            ) from None
    start = min(m.date() for m in moments)
    per_day = DAY_S // interval_s
    volumes: dict[Cell, Array] = {}
    weights: dict[str, list[tuple[float, float, float | None]]] = {}
    for row, moment in zip(rows, moments, strict=True):
        seconds = (moment - datetime.combine(start, moment.time().min)).total_seconds()
        index = int(seconds // interval_s)
        if index >= days * per_day:
            continue
        issue = row.issue or "all"
        volumes.setdefault((issue, "voice"), np.zeros(days * per_day))[index] += row.contacts
        weights.setdefault(issue, []).append((row.contacts, row.aht_s, row.patience_s))
    aht, patience = {}, {}
    for issue, items in weights.items():
        total = sum(w for w, _, _ in items) or 1.0
        aht[issue] = sum(max(w, 1e-9) * a for w, a, _ in items) / sum(
            max(w, 1e-9) for w, _, _ in items
        )
        given = [(w, p) for w, _, p in items if p is not None]
        patience[issue] = sum(w * p for w, p in given) / total if given else None
    return Forecast(start, days, interval_s, volumes, aht, patience, {}, "given")
