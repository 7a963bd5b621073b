"""Erlang C (M/M/c) and Erlang A (M/M/c+M) figures, and the fewest agents meeting a target.

Every figure is computed without factorials: Erlang B by its recursion (each step is a ratio in
(0, 1]), Erlang A from a birth–death chain summed in log space plus the closed form of the
virtual-waiting-time density, so hundreds of agents and loads near a thousand Erlangs are fine.
Units: seconds and contacts per second throughout; a load is in Erlangs (rate × handle time).

Erlang A (Palm; Garnett, Mandelbaum and Reiman 2002) adds exponential patience: a waiting
contact abandons at rate 1/patience. Its service level is the share of *all* arriving contacts
answered within the target (abandoned ones never count as answered), the figure a planner reads
off a log as ``answered within target / offered``. Its ``asa_s`` is the mean wait of answered
contacts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.integrate import quad
from scipy.special import gammaln, logsumexp

from router.errors import InvalidArgument

#: Terms of the waiting tail smaller than the largest by this many nats are dropped (e^-45).
_TAIL_CUTOFF_NATS = 45.0
#: A waiting tail longer than this means patience is practically infinite: use Erlang C.
_MAX_TAIL_TERMS = 5_000_000
#: `staff` gives up past this many agents (the target is unreachable or the load absurd).
MAX_AGENTS = 100_000


def _check_positive(field: str, value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise InvalidArgument(field, f"must be a positive number, got {value!r}")


def _check_non_negative(field: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise InvalidArgument(field, f"must be a non-negative number, got {value!r}")


def _check_servers(servers: int) -> None:
    if isinstance(servers, bool) or not isinstance(servers, int) or servers < 0:
        raise InvalidArgument("servers", f"must be a non-negative integer, got {servers!r}")


def erlang_b(servers: int, load: float) -> float:
    """Blocking probability of M/M/c/c with `load` Erlangs: the recursion never overflows."""
    _check_servers(servers)
    _check_non_negative("load", load)
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = load * blocking / (k + load * blocking)
    return blocking


def erlang_c(servers: int, load: float) -> float:
    """Probability that a contact waits in M/M/c (Erlang C); 1.0 when the load reaches `servers`."""
    blocking = erlang_b(servers, load)
    if load == 0:
        return 0.0
    if load >= servers:
        return 1.0
    return servers * blocking / (servers - load * (1.0 - blocking))


def _load(arrival_rate_per_s: float, aht_s: float) -> float:
    _check_non_negative("arrival_rate_per_s", arrival_rate_per_s)
    _check_positive("aht_s", aht_s)
    return arrival_rate_per_s * aht_s


def service_level_c(
    arrival_rate_per_s: float, aht_s: float, servers: int, target_s: float
) -> float:
    """Share of contacts answered within `target_s` in M/M/c: 1 - C·exp(-(c - A)·t / aht)."""
    load = _load(arrival_rate_per_s, aht_s)
    _check_non_negative("target_s", target_s)
    if load >= servers:
        return 0.0 if load > 0 else 1.0
    return 1.0 - erlang_c(servers, load) * math.exp(-(servers - load) * target_s / aht_s)


def asa_c(arrival_rate_per_s: float, aht_s: float, servers: int) -> float:
    """Average speed of answer of M/M/c in seconds: C·aht / (c - A); infinite when overloaded."""
    load = _load(arrival_rate_per_s, aht_s)
    if load == 0:
        return 0.0
    if load >= servers:
        return math.inf
    return erlang_c(servers, load) * aht_s / (servers - load)


def occupancy(arrival_rate_per_s: float, aht_s: float, servers: int) -> float:
    """Share of agent time spent handling contacts in M/M/c: A / c, at most 1."""
    load = _load(arrival_rate_per_s, aht_s)
    _check_servers(servers)
    if servers == 0:
        return 1.0 if load > 0 else 0.0
    return min(load / servers, 1.0)


@dataclass(frozen=True, slots=True)
class ErlangAResult:
    """Steady-state figures of M/M/c+M for one interval."""

    p_wait: float  # share of contacts that find every agent busy
    service_level: float  # share of all contacts answered within the target
    asa_s: float  # mean wait of answered contacts
    abandon_rate: float  # share of contacts that abandon
    occupancy: float  # share of agent time spent handling (answered load / agents)


@dataclass(frozen=True, slots=True)
class _Chain:
    """Stationary M/M/c+M distribution, in logs: states below c, then the waiting tail."""

    log_below: np.ndarray  # log π_n, n = 0 .. c-1
    log_tail: np.ndarray  # log π_{c+m}, m = 0 .. (m = contacts ahead of an arrival)


def _chain(rate: float, mu: float, theta: float, servers: int) -> _Chain:
    load = rate / mu
    n = np.arange(servers, dtype=float)
    log_below = n * math.log(load) - gammaln(n + 1.0)
    log_c = servers * math.log(load) - math.lgamma(servers + 1.0)
    # Ratios λ / (cμ + kθ) rise above 1 only while kθ < λ - cμ; past that peak they shrink.
    peak = max(0, math.ceil((rate - servers * mu) / theta))
    length = peak + 64
    while True:
        if length > _MAX_TAIL_TERMS:
            raise InvalidArgument("patience_s", "too long for this load: use Erlang C")
        k = np.arange(1, length, dtype=float)
        steps = np.log(rate) - np.log(servers * mu + k * theta)
        log_tail = log_c + np.concatenate(([0.0], np.cumsum(steps)))
        if log_tail[-1] < log_tail.max() - _TAIL_CUTOFF_NATS:
            break
        length *= 2
    total = logsumexp(np.concatenate((log_below, log_tail)))
    return _Chain(log_below=log_below - total, log_tail=log_tail - total)


def _answered_within(
    rate: float, mu: float, theta: float, servers: int, log_pi_last_idle: float, target_s: float
) -> float:
    """P(wait in (0, t] and answered) = ∫_0^t f_V(x)·e^{-θx} dx, where f_V(x) =
    λ·π_{c-1}·exp(λ(1 - e^{-θx})/θ - cμx) is the density of the virtual wait
    (Baccelli–Hébuterne). The exponent is concave, so after scaling by its maximum the
    integrand is a smooth bump that adaptive quadrature handles at any load or patience."""
    if target_s == 0:
        return 0.0
    y, decay = rate / theta, servers * mu + theta

    def exponent(x: float) -> float:
        return y * -math.expm1(-theta * x) - decay * x

    peak_s = math.log(rate / decay) / theta if rate > decay else 0.0
    top = exponent(peak_s)
    span_s = 1.0 / decay  # past the peak, widen until the integrand is below e^-50 of its top
    while exponent(peak_s + span_s) > top - 50.0:
        span_s *= 2.0
    end_s = min(target_s, peak_s + span_s)
    points = [peak_s] if 0 < peak_s < end_s else None
    integral, _ = quad(lambda x: math.exp(exponent(x) - top), 0.0, end_s, points=points, limit=200)
    return math.exp(math.log(rate) + log_pi_last_idle + top) * integral


def erlang_a(
    arrival_rate_per_s: float, aht_s: float, patience_s: float, servers: int, target_s: float
) -> ErlangAResult:
    """Figures of M/M/c+M: contacts abandon after an exponential patience of mean `patience_s`."""
    load = _load(arrival_rate_per_s, aht_s)
    _check_positive("patience_s", patience_s)
    _check_servers(servers)
    _check_non_negative("target_s", target_s)
    if load == 0:
        return ErlangAResult(0.0, 1.0, 0.0, 0.0, 0.0)
    if servers == 0:  # everybody waits until they give up
        return ErlangAResult(1.0, 0.0, math.inf, 1.0, 1.0)
    rate, mu, theta = arrival_rate_per_s, 1.0 / aht_s, 1.0 / patience_s
    chain = _chain(rate, mu, theta, servers)
    tail = np.exp(chain.log_tail)
    p_wait = float(tail.sum())
    # An arrival with m contacts ahead is answered iff it outlasts m + 1 exponential phases,
    # phase k (k ahead) ending at rate cμ + kθ while it abandons at rate θ.
    m = np.arange(tail.size, dtype=float)
    exit_rate = servers * mu + (m + 1.0) * theta
    log_survive = np.cumsum(np.log((servers * mu + m * theta) / exit_rate))
    answered_after_wait = np.exp(chain.log_tail + log_survive)
    p_answered = 1.0 - p_wait + float(answered_after_wait.sum())
    wait_answered = float((answered_after_wait * np.cumsum(1.0 / exit_rate)).sum())
    within = _answered_within(rate, mu, theta, servers, float(chain.log_below[-1]), target_s)
    return ErlangAResult(
        p_wait=min(max(p_wait, 0.0), 1.0),
        service_level=min(max(1.0 - p_wait + within, 0.0), 1.0),
        asa_s=wait_answered / p_answered if p_answered > 0 else math.inf,
        abandon_rate=min(max(1.0 - p_answered, 0.0), 1.0),
        occupancy=min(load * p_answered / servers, 1.0),
    )


@dataclass(frozen=True, slots=True)
class StaffingResult:
    """The fewest agents meeting a target for one interval, and what they achieve."""

    agents_required: int  # on the phones at once
    agents_scheduled: int  # required grossed up for shrinkage (breaks, training, absence)
    load_erlangs: float
    service_level: float
    asa_s: float
    p_wait: float
    occupancy: float
    abandon_rate: float  # 0.0 under Erlang C
    model: str  # "erlang_c" or "erlang_a"


def evaluate(
    arrival_rate_per_s: float,
    aht_s: float,
    servers: int,
    target_s: float,
    patience_s: float | None = None,
) -> ErlangAResult:
    """All figures for `servers` agents: Erlang A when `patience_s` is given, else Erlang C."""
    if patience_s is not None:
        return erlang_a(arrival_rate_per_s, aht_s, patience_s, servers, target_s)
    load = _load(arrival_rate_per_s, aht_s)
    _check_servers(servers)
    return ErlangAResult(
        p_wait=erlang_c(servers, load) if servers > load else 1.0 if load > 0 else 0.0,
        service_level=service_level_c(arrival_rate_per_s, aht_s, servers, target_s),
        asa_s=asa_c(arrival_rate_per_s, aht_s, servers),
        abandon_rate=0.0,
        occupancy=occupancy(arrival_rate_per_s, aht_s, servers),
    )


def staff(
    arrival_rate_per_s: float,
    aht_s: float,
    target_s: float,
    service_level: float,
    *,
    patience_s: float | None = None,
    max_occupancy: float | None = None,
    shrinkage: float = 0.0,
) -> StaffingResult:
    """Fewest agents answering `service_level` of contacts within `target_s` (and, if given,
    busy at most `max_occupancy` of their time); scheduled = ceil(required / (1 - shrinkage)).

    Service level and occupancy are monotone in the number of agents, so a doubling search
    followed by bisection finds the minimum with a few dozen evaluations even at 1000 agents.
    """
    load = _load(arrival_rate_per_s, aht_s)
    _check_non_negative("target_s", target_s)
    if not 0 < service_level <= 1:
        raise InvalidArgument("service_level", f"must be in (0, 1], got {service_level!r}")
    if max_occupancy is not None and not 0 < max_occupancy <= 1:
        raise InvalidArgument("max_occupancy", f"must be in (0, 1], got {max_occupancy!r}")
    if not 0 <= shrinkage < 1:
        raise InvalidArgument("shrinkage", f"must be in [0, 1), got {shrinkage!r}")
    if patience_s is not None:
        _check_positive("patience_s", patience_s)

    def meets(servers: int) -> bool:
        figures = evaluate(arrival_rate_per_s, aht_s, servers, target_s, patience_s)
        busy_ok = max_occupancy is None or figures.occupancy <= max_occupancy
        return busy_ok and figures.service_level >= service_level

    if load == 0:
        required = 0
    else:
        # Erlang C needs more agents than Erlangs, and A / c ≤ max occupancy. Erlang A has no
        # such bound: abandonment sheds load, so the search starts from nobody.
        low = 0
        if patience_s is None:
            low = math.floor(load)
            if max_occupancy is not None:
                low = max(low, math.ceil(load / max_occupancy) - 1)
        high = max(low + 1, 1)
        while not meets(high):
            low, high = high, 2 * high
            if high > MAX_AGENTS:
                raise InvalidArgument(
                    "service_level", f"{service_level} cannot be met with {MAX_AGENTS} agents"
                )
        while high - low > 1:  # invariant: meets(high) and not meets(low)
            middle = (low + high) // 2
            low, high = (low, middle) if meets(middle) else (middle, high)
        required = high
    figures = evaluate(arrival_rate_per_s, aht_s, required, target_s, patience_s)
    return StaffingResult(
        agents_required=required,
        agents_scheduled=math.ceil(required / (1.0 - shrinkage) - 1e-9),
        load_erlangs=load,
        service_level=figures.service_level,
        asa_s=figures.asa_s,
        p_wait=figures.p_wait,
        occupancy=figures.occupancy,
        abandon_rate=figures.abandon_rate,
        model="erlang_a" if patience_s is not None else "erlang_c",
    )
