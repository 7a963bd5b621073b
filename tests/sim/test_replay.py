"""Replay of a contact log in the generic format (the bank log is in test_validation)."""

from __future__ import annotations

from simulations.engine import simulate
from simulations.history import read_log
from simulations.replay import replay_plan


def test_replay_of_a_small_generic_log_runs() -> None:
    from simulations.cli import EXAMPLES

    contacts = read_log(EXAMPLES / "small_log.csv", "generic")
    plan = replay_plan(contacts)
    log = simulate(plan, 0)
    assert log.contacts == sum(1 for c in contacts if c.outcome != "phantom")
