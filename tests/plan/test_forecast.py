"""Forecasts: the weekday × interval profile against the naive baseline on held-out days."""

from __future__ import annotations

import math
import random
from datetime import date

import pytest

from simulations.history import LoggedContact, default_bank_log, read_log
from simulations.planning.forecast import backtest, count_history, forecast_history

EPOCH_MONDAY = 4 * 86_400  # 1970-01-05 is a Monday


def _log(days: int, seed: int = 5) -> list[LoggedContact]:
    """Poisson arrivals with a weekday level and a midday peak."""
    rng = random.Random(seed)
    contacts: list[LoggedContact] = []
    for day in range(days):
        level = 40.0 if day % 7 < 5 else 10.0
        for k in range(48):
            rate = level * math.exp(-((k - 24) ** 2) / 60)
            t = 0.0
            while True:
                t += rng.expovariate(rate / 1800) if rate > 0 else 1e9
                if t >= 1800:
                    break
                at = EPOCH_MONDAY + day * 86_400 + k * 1800 + t
                contacts.append(
                    LoggedContact(
                        f"{len(contacts)}", at, "PS", "voice", 0, None, 0.0, "served", 100.0, "a"
                    )
                )
    return contacts


def test_profile_beats_the_naive_baseline_on_held_out_days() -> None:
    history = count_history(_log(21), 1800)
    accuracy = backtest(history, 7, "profile")
    assert accuracy.wape_intervals < accuracy.naive_wape_intervals
    assert accuracy.holdout[0] == "1970-01-19"


def test_forecast_keeps_the_volume_and_the_weekly_shape() -> None:
    history = count_history(_log(14), 1800)
    volumes = forecast_history(history, date(1970, 1, 19), 7, "smoothing")
    total = sum(v.sum() for v in volumes.values())
    observed = history.total()[7:].sum()
    assert abs(total - observed) / observed < 0.1
    (series,) = volumes.values()
    assert series[:48].sum() > 2 * series[5 * 48 : 6 * 48].sum()  # Monday busier than Saturday


def test_bank_log_profile_beats_naive_per_interval() -> None:
    path = default_bank_log()
    if path is None:
        pytest.skip("bank log absent: ../shared/data/anonymous_bank_1999-08-01_15.csv.gz")
    accuracy = backtest(count_history(read_log(path), 1800), 7, "profile")
    assert accuracy.wape_cells < accuracy.naive_wape_cells
    assert accuracy.wape_intervals < accuracy.naive_wape_intervals
