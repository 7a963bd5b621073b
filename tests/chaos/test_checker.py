"""The offline checker on hand-made histories, clean and violating."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from router.chaos.checker import check, percentile
from router.chaos.history import Recorder, load, save

CAP = {"voice": 1, "chat": 2}


class Clock:
    """A settable clock for the recorder."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def history() -> tuple[Recorder, Clock]:
    clock = Clock()
    rec = Recorder(clock=clock)
    for agent in ("a1", "a2"):
        rec.add("setup", "harness", tenant="t1", agent=agent, data={"capacity": CAP})
    return rec, clock


def at(clock: Clock, t: float) -> None:
    clock.t = t


def submit(rec: Recorder, clock: Clock, t: float, contact: str) -> None:
    at(clock, t)
    op = rec.invoke("platform:t1", "submit", tenant="t1", data={"request_id": contact})
    at(clock, t + 0.01)
    rec.ok(op, contact=contact, reply=contact)


def offer(rec: Recorder, clock: Clock, t: float, contact: str, agent: str, token: int) -> None:
    at(clock, t)
    rec.add("server", "redis", op="offered", tenant="t1", contact=contact, agent=agent, token=token)
    rec.add(
        "recv",
        f"agent:t1:{agent}",
        op="offer",
        tenant="t1",
        contact=contact,
        agent=agent,
        token=token,
    )


def accept(
    rec: Recorder,
    clock: Clock,
    t: float,
    contact: str,
    agent: str,
    token: int,
    *,
    ok: bool = True,
    channel: str = "voice",
) -> None:
    at(clock, t)
    fields: dict[str, Any] = {"tenant": "t1", "contact": contact, "agent": agent, "token": token}
    op = rec.invoke(f"agent:t1:{agent}", "accept", channel=channel, **fields)
    at(clock, t + 0.01)
    if ok:
        rec.add("server", "redis", op="assigned", **fields)
        rec.ok(op, reply=contact)
    else:
        rec.fail(op, error="FAILED_PRECONDITION")


def complete(rec: Recorder, clock: Clock, t: float, contact: str, agent: str, token: int) -> None:
    at(clock, t)
    fields: dict[str, Any] = {"tenant": "t1", "contact": contact, "agent": agent, "token": token}
    op = rec.invoke(f"agent:t1:{agent}", "complete", **fields)
    at(clock, t + 0.01)
    rec.add("server", "redis", op="completed", **fields)
    rec.ok(op, reply=contact)


def final(
    rec: Recorder, clock: Clock, t: float, contact: str, status: str, phase: str, **data: Any
) -> None:
    at(clock, t)
    rec.add(
        "final",
        "harness",
        tenant="t1",
        contact=contact,
        status=status,
        data={"phase": phase, **data},
    )


def clean_history() -> Recorder:
    """c1 declined-by-expiry then accepted by another agent; c2 plain; all completed."""
    rec, clock = history()
    submit(rec, clock, 0.0, "c1")
    submit(rec, clock, 0.1, "c2")
    offer(rec, clock, 0.2, "c1", "a1", 1)
    rec.add(
        "fault", "agent:t1:a1", data={"kind": "agent_vanish", "pending": [["t1", "c1", 1, "a1"]]}
    )
    at(clock, 1.3)
    rec.add("server", "redis", op="requeued", tenant="t1", contact="c1", agent="a1", token=1)
    offer(rec, clock, 1.4, "c1", "a2", 2)
    accept(rec, clock, 1.5, "c1", "a1", 1, ok=False)  # too late: refused
    accept(rec, clock, 1.5, "c1", "a2", 2)
    offer(rec, clock, 1.6, "c2", "a1", 1)
    accept(rec, clock, 1.7, "c2", "a1", 1)
    complete(rec, clock, 2.0, "c1", "a2", 2)
    complete(rec, clock, 2.1, "c2", "a1", 1)
    for phase in ("end", "drained"):
        final(rec, clock, 3.0, "c1", "completed", phase)
        final(rec, clock, 3.0, "c2", "completed", phase)
    return rec


def test_a_clean_history_has_no_violation_and_measures_recovery() -> None:
    verdict = check(clean_history().events)
    assert verdict.clean, verdict.violations
    assert verdict.submitted == 2
    assert verdict.completed_drained == 2
    assert verdict.recovery_s == [1.4 - 0.2]
    assert verdict.summary()["P1_double_assignments"] == 0


def test_two_agents_holding_one_contact_at_once_is_a_double_assignment() -> None:
    rec, clock = history()
    submit(rec, clock, 0.0, "c1")
    offer(rec, clock, 0.2, "c1", "a1", 1)
    offer(rec, clock, 1.3, "c1", "a2", 2)
    accept(rec, clock, 1.4, "c1", "a1", 1)  # stale token accepted: the bug
    accept(rec, clock, 1.5, "c1", "a2", 2)
    complete(rec, clock, 2.0, "c1", "a2", 2)
    verdict = check(rec.events)
    kinds = {v.kind for v in verdict.violations if v.promise == "P1"}
    assert {"overlap", "double_assigned", "stale_token"} <= kinds
    assert verdict.summary()["P1_double_assignments"] == 1
    assert verdict.first_violation_t is not None


def test_two_accepts_without_a_requeue_between_violate_even_when_not_overlapping() -> None:
    rec, clock = history()
    submit(rec, clock, 0.0, "c1")
    offer(rec, clock, 0.2, "c1", "a1", 1)
    accept(rec, clock, 0.3, "c1", "a1", 1)
    complete(rec, clock, 0.5, "c1", "a1", 1)
    accept(rec, clock, 0.8, "c1", "a2", 1)
    complete(rec, clock, 0.9, "c1", "a2", 1)
    verdict = check(rec.events)
    assert [v.kind for v in verdict.violations if v.promise == "P1"].count("double_accept") == 1


def test_an_agent_holding_more_than_its_capacity_is_an_overrun() -> None:
    rec, clock = history()
    for i, cid in enumerate(("c1", "c2")):
        submit(rec, clock, 0.1 * i, cid)
        offer(rec, clock, 0.3 + 0.1 * i, cid, "a1", 1)
        accept(rec, clock, 0.5 + 0.1 * i, cid, "a1", 1)  # two voice calls, capacity 1
    rec.add("sample", "sampler", tenant="t1", agent="a1", data={"load": {"voice": 2}})
    verdict = check(rec.events)
    assert {v.kind for v in verdict.violations if v.promise == "P2"} == {"client", "sample"}
    assert verdict.summary()["P2_capacity_overruns"] == 1


def test_back_to_back_contacts_within_capacity_are_fine() -> None:
    rec, clock = history()
    submit(rec, clock, 0.0, "c1")
    submit(rec, clock, 0.0, "c2")
    accept(rec, clock, 0.5, "c1", "a1", 1)
    complete(rec, clock, 1.0, "c1", "a1", 1)
    accept(rec, clock, 1.0, "c2", "a1", 1)
    rec.add("sample", "sampler", tenant="t1", agent="a1", data={"load": {"voice": 1, "chat": 2}})
    assert check(rec.events).clean


def test_missing_unreachable_and_undrained_contacts_are_lost() -> None:
    rec, clock = history()
    for cid in ("c1", "c2", "c3", "c4", "c5"):
        submit(rec, clock, 0.0, cid)
    final(rec, clock, 5.0, "c1", "", "end")  # no hash: rolled back
    final(rec, clock, 5.0, "c2", "queued", "end", in_queue=False)
    final(rec, clock, 5.0, "c3", "offered", "end", in_offers=False)
    final(rec, clock, 5.0, "c4", "assigned", "end")  # open but reachable: fine at the end
    final(rec, clock, 5.0, "c5", "queued", "end", in_queue=True)
    final(rec, clock, 9.0, "c4", "assigned", "drained")  # ... but not after the drain
    final(rec, clock, 9.0, "c5", "abandoned", "drained")
    verdict = check(rec.events)
    lost = {(v.subject, v.kind) for v in verdict.violations if v.promise == "P3"}
    assert lost >= {
        ("c1", "lost_end"),
        ("c2", "lost_end"),
        ("c3", "lost_end"),
        ("c4", "lost_drained"),
    }
    assert ("c5", "lost_end") not in lost and ("c5", "lost_drained") not in lost
    assert verdict.open_end == 2


def test_an_unknown_submit_found_by_its_idempotency_key_must_not_be_lost() -> None:
    rec, clock = history()
    op = rec.invoke("platform:t1", "submit", tenant="t1", data={"request_id": "r1"})
    rec.unknown(op, error="DEADLINE_EXCEEDED")
    rec.add("final_request", "harness", tenant="t1", contact="c9", data={"request_id": "r1"})
    final(rec, clock, 1.0, "c9", "", "end")
    verdict = check(rec.events)
    assert verdict.submitted == 1
    assert [v.subject for v in verdict.violations] == ["c9"]


def test_a_reply_about_another_contact_is_reported() -> None:
    rec, _ = history()
    op = rec.invoke("agent:t1:a1", "accept", tenant="t1", contact="c1", agent="a1", token=1)
    rec.ok(op, reply="c2")
    assert [v.kind for v in check(rec.events).violations] == ["wrong_reply"]


def test_history_round_trips_through_json_lines(tmp_path: Path) -> None:
    rec = clean_history()
    rec.close_open()
    save(rec.events, tmp_path / "h.jsonl")
    again = list(load(tmp_path / "h.jsonl"))
    assert again == rec.events
    assert check(again).clean


def test_open_operations_end_unknown() -> None:
    rec, _ = history()
    rec.invoke("agent:t1:a1", "accept", tenant="t1", contact="c1", agent="a1", token=1)
    assert rec.close_open() == 1
    assert rec.events[-1]["type"] == "unknown"


def test_percentile_is_nearest_rank() -> None:
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([1.0] * 99 + [9.0], 0.99) == 1.0
    assert percentile([1.0, 9.0], 0.99) == 9.0
