"""Erlang B/C/A against textbook values and independent numerics; staffing minimality."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import expm

from router.errors import InvalidArgument
from simulations.erlang import (
    asa_c,
    erlang_a,
    erlang_b,
    erlang_c,
    evaluate,
    occupancy,
    service_level_c,
    staff,
)


def direct_erlang_c(servers: int, load: float) -> float:
    """Erlang C from its factorial definition: fine for small c, used as the reference."""
    top = load**servers / math.factorial(servers) * servers / (servers - load)
    below = sum(load**k / math.factorial(k) for k in range(servers))
    return top / (below + top)


def test_erlang_b_of_two_servers_and_one_erlang_is_a_fifth() -> None:
    assert erlang_b(2, 1.0) == pytest.approx(0.2)


@pytest.mark.parametrize(("servers", "load"), [(1, 0.5), (3, 2.2), (10, 8.0), (20, 17.5)])
def test_erlang_c_matches_the_factorial_formula(servers: int, load: float) -> None:
    assert erlang_c(servers, load) == pytest.approx(direct_erlang_c(servers, load), rel=1e-12)


def test_textbook_case_of_100_calls_per_half_hour_needs_14_agents() -> None:
    # 100 calls in 30 minutes, 3-minute handle time: 10 Erlangs (the worked example of the
    # "Erlang C made simple" tutorials): 11 agents wait 68.2 %, SL 39.0 %; 14 agents SL 88.7 %.
    rate, aht = 100 / 1800, 180.0
    assert erlang_c(11, 10.0) == pytest.approx(0.6821, abs=1e-4)
    assert service_level_c(rate, aht, 11, 20) == pytest.approx(0.3896, abs=1e-4)
    assert service_level_c(rate, aht, 14, 20) == pytest.approx(0.8884, abs=1e-4)
    assert asa_c(rate, aht, 14) == pytest.approx(7.84, abs=0.01)
    result = staff(rate, aht, target_s=20, service_level=0.8)
    assert (result.agents_required, result.agents_scheduled) == (14, 14)
    assert result.occupancy == pytest.approx(10 / 14)


def test_overloaded_erlang_c_always_waits() -> None:
    assert erlang_c(5, 5.0) == 1.0
    assert service_level_c(1.0, 10.0, 9, 20) == 0.0
    assert asa_c(1.0, 10.0, 9) == math.inf
    assert occupancy(1.0, 10.0, 9) == 1.0


def test_large_centers_stay_finite() -> None:
    waits = erlang_c(800, 780.0)
    assert 0 < waits < 1
    result = erlang_a(780 / 300, 300, 120, 800, 20)
    figures = (result.p_wait, result.service_level, result.asa_s, result.abandon_rate)
    assert all(math.isfinite(x) for x in figures)
    assert staff(900 / 300, 300, 20, 0.8).agents_required > 900
    assert staff(900 / 300, 300, 20, 0.8, patience_s=60).agents_required < 900


def reference_erlang_a(
    rate: float, aht: float, patience: float, servers: int, target: float
) -> tuple[float, float, float, float]:
    """P(wait), SL, ASA of answered, P(abandon) of M/M/c+M by plain linear algebra: the
    stationary law of a truncated generator, then the tagged contact's absorbing chain."""
    mu, theta, size = 1 / aht, 1 / patience, servers + 120
    generator = np.zeros((size, size))
    for n in range(size - 1):
        generator[n, n + 1] = rate
        generator[n + 1, n] = min(n + 1, servers) * mu + max(n + 1 - servers, 0) * theta
    np.fill_diagonal(generator, -generator.sum(axis=1))
    system = np.vstack([generator.T, np.ones(size)])
    pi = np.linalg.lstsq(system, np.r_[np.zeros(size), 1.0], rcond=None)[0]
    p_wait = pi[servers:].sum()
    # Tagged contact: state k = contacts ahead (0..K), absorbing served S and abandoned A.
    ahead = size - servers
    chain = np.zeros((ahead + 2, ahead + 2))
    served, gone = ahead, ahead + 1
    for k in range(ahead):
        chain[k, k - 1 if k else served] = servers * mu + k * theta
        chain[k, gone] = theta
    np.fill_diagonal(chain, -chain.sum(axis=1))
    within = expm(chain * target)[:ahead, served]
    transient = chain[:ahead, :ahead]
    p_served_from = np.linalg.solve(-transient, chain[:ahead, served])
    time_in = np.linalg.inv(-transient)  # expected time in j starting from k
    wait_if_served = time_in @ p_served_from
    tail = pi[servers:]
    p_answered = pi[:servers].sum() + tail @ p_served_from
    service_level = pi[:servers].sum() + tail @ within
    asa = (tail @ wait_if_served) / p_answered
    return p_wait, service_level, asa, 1 - p_answered


@pytest.mark.parametrize(
    ("rate", "aht", "patience", "servers", "target"),
    [
        (1 / 60, 180, 120, 2, 20),
        (0.05, 200, 60, 5, 30),
        (0.2, 60, 300, 10, 10),
        (0.1, 90, 30, 6, 0),
    ],
)
def test_erlang_a_matches_an_independent_birth_death_solution(
    rate: float, aht: float, patience: float, servers: int, target: float
) -> None:
    p_wait, service_level, asa, abandon = reference_erlang_a(rate, aht, patience, servers, target)
    result = erlang_a(rate, aht, patience, servers, target)
    assert result.p_wait == pytest.approx(p_wait, abs=1e-9)
    assert result.service_level == pytest.approx(service_level, abs=1e-8)
    assert result.asa_s == pytest.approx(asa, rel=1e-7)
    assert result.abandon_rate == pytest.approx(abandon, abs=1e-9)
    assert result.occupancy == pytest.approx(rate * aht * (1 - abandon) / servers, rel=1e-9)


def test_erlang_a_with_endless_patience_is_erlang_c() -> None:
    result = erlang_a(1 / 60, 180, 1e9, 4, 20)
    assert result.p_wait == pytest.approx(erlang_c(4, 3.0), rel=1e-5)
    assert result.service_level == pytest.approx(service_level_c(1 / 60, 180, 4, 20), rel=1e-5)
    assert result.asa_s == pytest.approx(asa_c(1 / 60, 180, 4), rel=1e-4)


def test_erlang_a_long_target_answers_everyone_who_stays() -> None:
    result = erlang_a(3.0, 300, 60, 700, 1e6)
    assert result.service_level == pytest.approx(1 - result.abandon_rate, abs=1e-9)


loads = st.floats(min_value=0.01, max_value=400.0)


@given(servers=st.integers(min_value=1, max_value=500), load=loads)
def test_p_wait_is_a_probability_that_falls_with_more_servers(servers: int, load: float) -> None:
    now, more = erlang_c(servers, load), erlang_c(servers + 1, load)
    assert 0.0 <= more <= now <= 1.0
    assert 0.0 <= erlang_b(servers, load) <= 1.0


@settings(max_examples=60, deadline=None)
@given(
    servers=st.integers(min_value=1, max_value=300),
    load=loads,
    patience_s=st.floats(min_value=5.0, max_value=3600.0),
    target_s=st.floats(min_value=0.0, max_value=120.0),
)
def test_erlang_a_figures_are_probabilities_and_improve_with_servers(
    servers: int, load: float, patience_s: float, target_s: float
) -> None:
    now = erlang_a(load / 100, 100, patience_s, servers, target_s)
    more = erlang_a(load / 100, 100, patience_s, servers + 1, target_s)
    for figure in (now.p_wait, now.service_level, now.abandon_rate, now.occupancy):
        assert 0.0 <= figure <= 1.0
    assert more.service_level >= now.service_level - 1e-9
    assert more.abandon_rate <= now.abandon_rate + 1e-9


@settings(max_examples=60, deadline=None)
@given(
    rate_per_hour=st.floats(min_value=1.0, max_value=3000.0),
    aht_s=st.floats(min_value=30.0, max_value=900.0),
    service_level=st.floats(min_value=0.5, max_value=0.95),
    patience_s=st.one_of(st.none(), st.floats(min_value=10.0, max_value=1200.0)),
    max_occupancy=st.one_of(st.none(), st.floats(min_value=0.6, max_value=1.0)),
)
def test_staffing_is_the_fewest_agents_meeting_the_target(
    rate_per_hour: float,
    aht_s: float,
    service_level: float,
    patience_s: float | None,
    max_occupancy: float | None,
) -> None:
    rate = rate_per_hour / 3600
    result = staff(
        rate, aht_s, 20, service_level, patience_s=patience_s, max_occupancy=max_occupancy
    )
    required = result.agents_required
    assert result.service_level >= service_level
    assert max_occupancy is None or result.occupancy <= max_occupancy
    fewer = evaluate(rate, aht_s, required - 1, 20, patience_s)
    busy_fewer = max_occupancy is not None and fewer.occupancy > max_occupancy
    assert fewer.service_level < service_level or busy_fewer


def test_shrinkage_grosses_up_the_schedule() -> None:
    result = staff(100 / 1800, 180, 20, 0.8, shrinkage=0.3)
    assert result.agents_required == 14
    assert result.agents_scheduled == math.ceil(14 / 0.7)


def test_occupancy_cap_adds_agents() -> None:
    assert staff(100 / 1800, 180, 20, 0.8, max_occupancy=0.6).agents_required == 17


def test_no_contacts_need_no_agents() -> None:
    assert staff(0.0, 180, 20, 0.8).agents_required == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"arrival_rate_per_s": -1.0}, "arrival_rate_per_s"),
        ({"aht_s": 0.0}, "aht_s"),
        ({"service_level": 0.0}, "service_level"),
        ({"service_level": 1.2}, "service_level"),
        ({"shrinkage": 1.0}, "shrinkage"),
        ({"max_occupancy": 0.0}, "max_occupancy"),
        ({"patience_s": -5.0}, "patience_s"),
        ({"target_s": math.nan}, "target_s"),
    ],
)
def test_bad_arguments_name_their_field(kwargs: dict[str, float], field: str) -> None:
    arguments: dict[str, float] = {
        "arrival_rate_per_s": 0.1,
        "aht_s": 180.0,
        "target_s": 20.0,
        "service_level": 0.8,
    }
    arguments.update(kwargs)
    with pytest.raises(InvalidArgument) as caught:
        staff(**arguments)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
