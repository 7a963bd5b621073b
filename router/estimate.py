"""Expected wait for a new contact: a stated, simple method, pure.

Method ("work ahead over serving capacity"): if an eligible agent has a free slot now and
nobody of the same issue and channel waits, the wait is 0. Otherwise the contacts ahead
(waiting contacts of the same issue and channel, plus the new one) are served by the
eligible signed-in agents' slots on that channel, each slot finishing one contact per
average handle time: wait = (ahead + 1) x AHT / slots - the remaining share of a slot
that is free now. With no eligible agent signed in, the wait is unknown (None).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_AHT_S = 300.0


@dataclass(frozen=True, slots=True)
class WaitEstimate:
    """An expected wait (None: unknown, nobody can serve) and its inputs."""

    wait_s: float | None
    ahead: int
    slots: int
    free_slots: int
    aht_s: float
    method: str


def expected_wait(ahead: int, slots: int, free_slots: int, aht_s: float | None) -> WaitEstimate:
    """Expected wait of a contact behind `ahead` others, served by `slots` eligible slots
    of which `free_slots` are free now, with average handle time `aht_s`."""
    aht = aht_s if aht_s and aht_s > 0 else DEFAULT_AHT_S
    if slots <= 0:
        return WaitEstimate(None, ahead, 0, 0, aht, "no eligible agent signed in")
    if free_slots > ahead:
        return WaitEstimate(0.0, ahead, slots, free_slots, aht, "an eligible agent is free")
    queued_work = (ahead + 1 - free_slots) * aht
    wait = max(0.0, queued_work / slots)
    return WaitEstimate(
        wait,
        ahead,
        slots,
        free_slots,
        aht,
        f"({ahead} ahead + 1 - {free_slots} free) x AHT {aht:.0f} s / {slots} slots",
    )
