"""The expected wait the service quotes (``router.estimate``, the stated method "work ahead
over serving capacity") checked against what the queue then does: the simulator, which runs
the live routing core, records every contact's quoted wait at its arrival and the wait it
then had. For M/M/c with first-come-first-served routing the method is exact in expectation
(all slots busy and memoryless service: the (ahead + 1)-th departure comes after
(ahead + 1) / (c / AHT) on average), so the mean quoted and the mean actual wait must agree,
and a longer quote must mean a longer wait."""

from __future__ import annotations

import statistics

import pytest

from router.estimate import expected_wait
from simulations.engine import Engine
from simulations.waiting import Job
from tests.sim.sim_plans import mmc_plan

AHT_S = 60.0


class QuotingEngine(Engine):
    """The simulator, quoting each arriving contact's expected wait as the service would:
    contacts ahead of it (same issue and channel), eligible slots, free slots now."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.quotes: dict[int, float] = {}

    def _arrive(self, job: Job, now: float) -> None:
        channel = job.contact.channel
        ahead = sum(
            1
            for j in self._room.all_waiting()
            if j.contact.issue == job.contact.issue and j.contact.channel == channel
        )
        slots = sum(a.capacity.get(channel, 0) for a in self.floor if a.is_available)
        free = self._free[channel]
        quote = expected_wait(ahead, slots, free, AHT_S)
        super()._arrive(job, now)
        assert quote.wait_s is not None
        self.quotes[job.index] = quote.wait_s


@pytest.mark.parametrize(("rate_per_s", "servers"), [(0.09, 6), (0.15, 10)])
def test_quoted_expected_wait_matches_the_wait_the_queue_then_gives(
    rate_per_s: float, servers: int
) -> None:
    plan = mmc_plan(rate_per_s, AHT_S, servers, 6 * 3600.0)
    quoted, actual = [], []
    for seed in range(3):
        engine = QuotingEngine(plan, seed)
        log = engine.run()
        for index, quote in engine.quotes.items():
            quoted.append(quote)
            actual.append(log.wait_s[index])
    assert len(quoted) > 5000
    busy = [i for i, q in enumerate(quoted) if q > 0]
    assert len(busy) > 500, "the run must queue enough to test the method"
    mean_q = statistics.fmean(quoted[i] for i in busy)
    mean_a = statistics.fmean(actual[i] for i in busy)
    # Unbiased: the mean quote of queued contacts is within 10 % of their mean wait.
    assert abs(mean_q - mean_a) <= 0.10 * mean_a, (mean_q, mean_a)
    # Informative: quotes rank waits (a longer quote, a longer wait).
    assert statistics.correlation(quoted, actual) > 0.6
    # A zero quote (a free eligible slot) means answered at once.
    assert all(actual[i] == 0.0 for i, q in enumerate(quoted) if q == 0.0)


def test_no_eligible_agent_quotes_an_unknown_wait() -> None:
    assert expected_wait(3, 0, 0, AHT_S).wait_s is None
    assert expected_wait(0, 4, 1, AHT_S).wait_s == 0.0
    assert expected_wait(3, 2, 0, AHT_S).wait_s == pytest.approx(4 * AHT_S / 2)
