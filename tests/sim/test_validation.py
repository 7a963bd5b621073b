"""The simulator against queueing theory (M/M/c: Erlang C; M/M/c+M: Erlang A) and against
the bank log it replays.

Each check runs seeded replications and asks that the formula's value lies within the 95%
confidence interval of the simulated mean. Seeded, so the outcome is the same every run.
"""

from __future__ import annotations

import pytest

from simulations.engine import simulate
from simulations.erlang import asa_c, erlang_a, occupancy, service_level_c
from simulations.history import default_bank_log, read_log
from simulations.models import Exponential
from simulations.replay import bank_scenario, log_figures
from simulations.results import replicate, summarize
from tests.sim.sim_plans import mmc_plan

RATE, AHT, SERVERS = 4.0 / 60.0, 60.0, 5  # 4 Erlangs on 5 agents: occupancy 80%


def test_mmc_reproduces_erlang_c_within_confidence_interval() -> None:
    plan = mmc_plan(RATE, AHT, SERVERS, horizon_s=12 * 3600.0, warmup_s=1800.0)
    reps = replicate(plan, replications=20, seed=11)
    sl, asa = reps.total("service_level"), reps.total("asa_s")
    assert sl.covers(service_level_c(RATE, AHT, SERVERS, 20.0)), sl
    assert asa.covers(asa_c(RATE, AHT, SERVERS)), asa
    assert reps.occupancy("g").covers(occupancy(RATE, AHT, SERVERS)), reps.occupancy("g")
    assert sl.half_width < 0.04 and asa.half_width < 0.2 * asa.mean  # the check has teeth


@pytest.mark.parametrize("patience_s", [60.0, 300.0])
def test_mmc_with_abandonment_reproduces_erlang_a(patience_s: float) -> None:
    rate = 5.0 / 60.0  # 5 Erlangs on 5 agents: only abandonment keeps the queue finite
    plan = mmc_plan(
        rate, AHT, SERVERS, horizon_s=4 * 3600.0, warmup_s=1800.0, patience=Exponential(patience_s)
    )
    reps = replicate(plan, replications=20, seed=5)
    theory = erlang_a(rate, AHT, patience_s, SERVERS, 20.0)
    assert reps.total("abandon_rate").covers(theory.abandon_rate), reps.total("abandon_rate")
    assert reps.total("service_level").covers(theory.service_level), reps.total("service_level")
    assert reps.total("asa_s").covers(theory.asa_s), reps.total("asa_s")
    assert reps.total("abandon_rate").mean > 0.02


BANK = default_bank_log()
needs_bank = pytest.mark.skipif(
    BANK is None,
    reason="bank log absent: expected ../shared/data/anonymous_bank_1999-08-01_15.csv.gz "
    "beside the repository",
)


@needs_bank
def test_bank_replay_offers_exactly_the_logged_contacts_to_the_logged_agents() -> None:
    assert BANK is not None
    contacts = read_log(BANK, "bank")
    scenario = bank_scenario(BANK)
    plan = scenario.plan
    kept = [c for c in contacts if c.outcome != "phantom"]
    assert len(plan.replay) == len(kept)
    assert {a.id for a in plan.agents} == {c.agent_id for c in kept if c.agent_id}
    summary = summarize(simulate(plan, 1), plan)
    logged = log_figures(contacts)
    for issue, figures in summary.by_issue.items():
        assert figures.offered == logged[issue]["offered"]
    # the simulated bank is busier than nothing and less busy than saturated
    assert 0.0 < summary.total.abandon_rate < 0.5
