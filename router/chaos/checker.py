"""Offline checker of a chaos history: counts violations of the routing promises.

Pure: it reads a list of events (see ``router.chaos.history``) and imports nothing that does
I/O. Definitions, from the recorded history alone:

P1, one contact never given to two agents:
  * a *hold* of a contact by an agent starts when an ``AcceptOffer`` returned ok and ends at
    the invoke of the first ``CompleteContact`` of the same (contact, agent, token) that did
    not fail (ok or unknown), else never (still held at the end). Holds are measured from the
    client's side and conservatively short, so an overlap is a real double assignment.
  * ``overlap``: two holds of one contact by different agents overlap in time;
  * ``double_accept``: two ok accepts of one contact by different agents with no requeue
    notice of that contact in between (a held contact can only be completed, never requeued);
  * ``double_assigned``: two ``assigned`` notices of one contact naming different agents with
    no ``requeued`` notice in between (the Lua scripts publish in commit order);
  * ``stale_token``: an ``assigned`` notice whose token is older than an ``offered`` notice
    of the same contact seen before it (a fenced-off offer was committed).
P2, no agent past capacity:
  * ``client``: at some moment an agent holds (as above) more contacts of one channel than
    its capacity on that channel;
  * ``sample``: a periodic read of an agent's load hash shows more than its capacity (the
    load counts offers too) or a negative count.
P3, no contact lost: every contact the platform submitted (ok, or unknown but found by its
  idempotency key) is, at the end, completed, abandoned, or still open *and reachable*
  (queued and in the queue, offered and in the offers index, or assigned); after the final
  drain it is completed or abandoned. A contact with no hash, or queued but not in the
  queue, or offered without a deadline in the offers index, is lost.
Recovery: for each *holder death* (an agent vanished or its stream was cut with offers
  pending, a replica killed or paused under its agents) and each offer pending then, the
  time until that contact was offered again (a new token to anyone, or the same token
  delivered again after a reconnect). Compared against the offer timeout.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Event = Mapping[str, Any]
Key = tuple[str, str]  # (tenant, contact) or (tenant, agent)
_CLOSED = ("completed", "abandoned")


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken promise, with the evidence."""

    promise: str  # P1, P2, P3
    kind: str
    tenant: str
    subject: str  # contact or agent id
    t: float
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "promise": self.promise,
            "kind": self.kind,
            "tenant": self.tenant,
            "subject": self.subject,
            "t": round(self.t, 3),
            "detail": self.detail,
        }


@dataclass
class Verdict:
    """What the checker found."""

    violations: list[Violation] = field(default_factory=list)
    submitted: int = 0
    completed_end: int = 0
    abandoned_end: int = 0
    open_end: int = 0
    completed_drained: int = 0
    abandoned_drained: int = 0
    drained_checked: bool = False
    operations: dict[str, dict[str, int]] = field(default_factory=dict)
    recovery_s: list[float] = field(default_factory=list)
    recovery_by_kind: dict[str, list[float]] = field(default_factory=dict)
    unrecovered: int = 0
    survived: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    first_violation_t: float | None = None
    samples: int = 0

    def count(self, promise: str, kind: str | None = None) -> int:
        """Violations of `promise` (and `kind`), counted once per subject."""
        return len(
            {
                (v.tenant, v.subject, v.kind)
                for v in self.violations
                if v.promise == promise and (kind is None or v.kind == kind)
            }
        )

    def subjects(self, promise: str) -> int:
        """Distinct contacts or agents with at least one violation of `promise`."""
        return len({(v.tenant, v.subject) for v in self.violations if v.promise == promise})

    @property
    def clean(self) -> bool:
        """No violation of P1, P2 or P3."""
        return not self.violations

    def summary(self) -> dict[str, Any]:
        """The figures, JSON-ready."""
        kinds: dict[str, int] = defaultdict(int)
        for v in self.violations:
            kinds[f"{v.promise}.{v.kind}"] += 1
        return {
            "submitted": self.submitted,
            "completed_end": self.completed_end,
            "abandoned_end": self.abandoned_end,
            "open_end": self.open_end,
            "completed_drained": self.completed_drained,
            "abandoned_drained": self.abandoned_drained,
            "drained_checked": self.drained_checked,
            "P1_double_assignments": self.subjects("P1"),
            "P2_capacity_overruns": self.subjects("P2"),
            "P3_lost_contacts": self.subjects("P3"),
            "violations_by_kind": dict(sorted(kinds.items())),
            "first_violation_t": self.first_violation_t,
            "recovery": recovery_figures(self.recovery_s),
            "recovery_by_kind": {
                k: recovery_figures(v) for k, v in sorted(self.recovery_by_kind.items())
            },
            "unrecovered": self.unrecovered,
            "survived_without_reoffer": self.survived,
            "faults": dict(sorted(self.faults.items())),
            "operations": self.operations,
            "load_samples": self.samples,
        }


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0..1) by nearest rank; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def recovery_figures(values: Sequence[float]) -> dict[str, float | int]:
    """Count, p50, p99 and max of recovery times (seconds)."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_s": round(percentile(values, 0.5), 3),
        "p99_s": round(percentile(values, 0.99), 3),
        "max_s": round(max(values), 3),
    }


@dataclass(frozen=True, slots=True)
class _Op:
    op: str
    process: str
    invoke: Event
    result: Event | None

    @property
    def outcome(self) -> str:
        return "open" if self.result is None else str(self.result["type"])


def _pair_ops(events: Sequence[Event]) -> list[_Op]:
    invoked: dict[int, Event] = {}
    done: dict[int, Event] = {}
    for e in events:
        kind = e.get("type")
        if kind == "invoke":
            invoked[int(e["id"])] = e
        elif kind in ("ok", "fail", "unknown") and "id" in e:
            done[int(e["id"])] = e
    return [
        _Op(str(inv["op"]), str(inv["p"]), inv, done.get(op_id))
        for op_id, inv in sorted(invoked.items())
    ]


@dataclass(frozen=True, slots=True)
class _Hold:
    agent: str
    token: int
    channel: str
    start: float
    end: float


def check(events: Iterable[Event]) -> Verdict:
    """Judge a history; see the module docstring for the definitions."""
    history = sorted(events, key=lambda e: float(e["t"]))
    verdict = Verdict()
    ops = _pair_ops(history)
    _count_ops(ops, verdict)
    capacity = _capacities(history)
    holds = _holds(ops)
    requeues = _notices(history, ("requeued", "withdrawn"))
    _check_p1_client(holds, ops, requeues, verdict)
    _check_p1_server(history, verdict)
    _check_p2(holds, capacity, history, verdict)
    _check_p3(ops, history, verdict)
    _check_replies(ops, verdict)
    _recovery(history, verdict)
    for e in history:
        if e.get("type") == "fault":
            kind = str(e.get("data", {}).get("kind", "fault"))
            verdict.faults[kind] = verdict.faults.get(kind, 0) + 1
    if verdict.violations:
        verdict.first_violation_t = min(v.t for v in verdict.violations)
    return verdict


def _count_ops(ops: Sequence[_Op], verdict: Verdict) -> None:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for op in ops:
        counts[op.op][op.outcome] += 1
    verdict.operations = {k: dict(v) for k, v in sorted(counts.items())}


def _capacities(history: Sequence[Event]) -> dict[Key, dict[str, int]]:
    caps: dict[Key, dict[str, int]] = {}
    for e in history:
        if e.get("type") == "setup" and "agent" in e:
            raw = e.get("data", {}).get("capacity", {})
            caps[(str(e["tenant"]), str(e["agent"]))] = {str(k): int(v) for k, v in raw.items()}
    return caps


def _holds(ops: Sequence[_Op]) -> dict[Key, list[_Hold]]:
    """Holds per (tenant, contact): from an ok accept to the first non-failed complete."""
    ends: dict[tuple[str, str, str, int], float] = {}
    for op in ops:
        if op.op != "complete" or op.outcome == "fail":
            continue
        inv = op.invoke
        k = (str(inv["tenant"]), str(inv["contact"]), str(inv["agent"]), int(inv["token"]))
        t = float(inv["t"])
        ends[k] = min(t, ends.get(k, math.inf))
    holds: dict[Key, list[_Hold]] = defaultdict(list)
    seen: set[tuple[str, str, str, int]] = set()
    for op in ops:
        if op.op != "accept" or op.outcome != "ok" or op.result is None:
            continue
        inv = op.invoke
        k = (str(inv["tenant"]), str(inv["contact"]), str(inv["agent"]), int(inv["token"]))
        if k in seen:  # a repeated accept of the same offer (idempotent) is one hold
            continue
        seen.add(k)
        start = float(op.result["t"])
        end = ends.get(k, math.inf)  # still held when the history ends
        holds[(k[0], k[1])].append(
            _Hold(k[2], k[3], str(inv.get("channel", "")), start, max(start, end))
        )
    return holds


def _notices(history: Sequence[Event], kinds: tuple[str, ...]) -> dict[Key, list[float]]:
    found: dict[Key, list[float]] = defaultdict(list)
    for e in history:
        if e.get("type") == "server" and e.get("op") in kinds and "contact" in e:
            found[(str(e["tenant"]), str(e["contact"]))].append(float(e["t"]))
    return found


def _add(verdict: Verdict, *args: Any) -> None:
    verdict.violations.append(Violation(*args))


def _check_p1_client(
    holds: Mapping[Key, list[_Hold]],
    ops: Sequence[_Op],
    requeues: Mapping[Key, list[float]],
    verdict: Verdict,
) -> None:
    for (tenant, contact), hs in holds.items():
        ordered = sorted(hs, key=lambda h: h.start)
        for i, a in enumerate(ordered):
            for b in ordered[i + 1 :]:
                if a.agent == b.agent:
                    continue
                if b.start < a.end:
                    _add(
                        verdict,
                        "P1",
                        "overlap",
                        tenant,
                        contact,
                        b.start,
                        f"held by {a.agent} (token {a.token}) from {a.start:.3f} to "
                        f"{a.end:.3f} and by {b.agent} (token {b.token}) from {b.start:.3f}",
                    )
                elif not any(a.start < t < b.start for t in requeues.get((tenant, contact), ())):
                    _add(
                        verdict,
                        "P1",
                        "double_accept",
                        tenant,
                        contact,
                        b.start,
                        f"accepted by {a.agent} (token {a.token}) at {a.start:.3f} and by "
                        f"{b.agent} (token {b.token}) at {b.start:.3f} with no requeue between",
                    )


def _check_p1_server(history: Sequence[Event], verdict: Verdict) -> None:
    last_assigned: dict[Key, str] = {}
    top_offered: dict[Key, int] = {}
    for e in history:
        if e.get("type") != "server" or "contact" not in e:
            continue
        key = (str(e["tenant"]), str(e["contact"]))
        kind, token = e.get("op"), int(e.get("token", 0))
        if kind == "offered":
            top_offered[key] = max(token, top_offered.get(key, 0))
        elif kind == "requeued":
            last_assigned.pop(key, None)
        elif kind == "assigned":
            agent = str(e.get("agent", ""))
            previous = last_assigned.get(key)
            if previous is not None and previous != agent:
                _add(
                    verdict,
                    "P1",
                    "double_assigned",
                    key[0],
                    key[1],
                    float(e["t"]),
                    f"assigned to {previous}, then to {agent} with no requeue between",
                )
            last_assigned[key] = agent
            if token < top_offered.get(key, 0):
                _add(
                    verdict,
                    "P1",
                    "stale_token",
                    key[0],
                    key[1],
                    float(e["t"]),
                    f"assigned to {agent} with token {token} after token "
                    f"{top_offered[key]} was offered",
                )


def _check_p2(
    holds: Mapping[Key, list[_Hold]],
    capacity: Mapping[Key, Mapping[str, int]],
    history: Sequence[Event],
    verdict: Verdict,
) -> None:
    steps: dict[tuple[str, str, str], list[tuple[float, int]]] = defaultdict(list)
    for (tenant, _contact), hs in holds.items():
        for h in hs:
            steps[(tenant, h.agent, h.channel)].append((h.start, 1))
            steps[(tenant, h.agent, h.channel)].append((h.end, -1))
    for (tenant, agent, channel), moves in steps.items():
        cap = capacity.get((tenant, agent), {}).get(channel)
        if cap is None:
            continue
        held = 0
        for t, delta in sorted(moves, key=lambda m: (m[0], m[1])):  # ends first on ties
            held += delta
            if held > cap:
                _add(
                    verdict,
                    "P2",
                    "client",
                    tenant,
                    agent,
                    t,
                    f"held {held} {channel} contacts with capacity {cap}",
                )
    for e in history:
        if e.get("type") != "sample":
            continue
        verdict.samples += 1
        tenant, agent = str(e["tenant"]), str(e["agent"])
        cap_of = capacity.get((tenant, agent), {})
        for channel, n in e.get("data", {}).get("load", {}).items():
            cap = cap_of.get(str(channel), 0)
            if int(n) > cap or int(n) < 0:
                _add(
                    verdict,
                    "P2",
                    "sample",
                    tenant,
                    agent,
                    float(e["t"]),
                    f"load hash says {n} {channel} with capacity {cap}",
                )


def _check_p3(ops: Sequence[_Op], history: Sequence[Event], verdict: Verdict) -> None:
    submitted: dict[Key, float] = {}
    for op in ops:
        if op.op == "submit" and op.outcome == "ok" and op.result is not None:
            submitted[(str(op.result["tenant"]), str(op.result["contact"]))] = float(op.result["t"])
    finals: dict[str, dict[Key, Event]] = defaultdict(dict)
    for e in history:
        if e.get("type") == "final_request" and e.get("contact"):
            submitted.setdefault((str(e["tenant"]), str(e["contact"])), float(e["t"]))
        elif e.get("type") == "final":
            phase = str(e.get("data", {}).get("phase", "end"))
            finals[phase][(str(e["tenant"]), str(e["contact"]))] = e
    verdict.submitted = len(submitted)
    for phase in ("end", "drained"):
        if phase not in finals:
            continue
        verdict.drained_checked |= phase == "drained"
        for key, t_sub in submitted.items():
            final = finals[phase].get(key)
            status = str(final.get("status", "")) if final else ""
            data = final.get("data", {}) if final else {}
            lost = ""
            if final is None:
                lost = "not read at the end"
            elif not status:
                lost = "no contact hash in Redis"
            elif status == "queued" and not data.get("in_queue"):
                lost = "queued but not in the queue (never routed again)"
            elif status == "offered" and not data.get("in_offers"):
                lost = "offered but not in the offers index (never expires)"
            elif phase == "drained" and status not in _CLOSED:
                lost = f"still {status} after the drain"
            if lost:
                _add(verdict, "P3", f"lost_{phase}", key[0], key[1], t_sub, lost)
                continue
            if phase == "end":
                verdict.completed_end += status == "completed"
                verdict.abandoned_end += status == "abandoned"
                verdict.open_end += status not in _CLOSED
            else:
                verdict.completed_drained += status == "completed"
                verdict.abandoned_drained += status == "abandoned"


def _check_replies(ops: Sequence[_Op], verdict: Verdict) -> None:
    """Every ok reply must be about the contact its request named."""
    for op in ops:
        if op.outcome != "ok" or op.result is None or "reply" not in op.result:
            continue
        asked = op.invoke.get("contact")
        if asked and op.result["reply"] != asked:
            _add(
                verdict,
                "P1",
                "wrong_reply",
                str(op.invoke.get("tenant", "")),
                str(asked),
                float(op.result["t"]),
                f"{op.op} of {asked} answered about {op.result['reply']}",
            )


def _recovery(history: Sequence[Event], verdict: Verdict) -> None:
    """Holder death to re-offer, for every offer pending at a holder death."""
    deliveries: dict[Key, list[tuple[float, int, str]]] = defaultdict(list)
    accepted: dict[tuple[str, str, int], float] = {}
    closed_at: dict[Key, float] = {}
    for e in history:
        kind, op = e.get("type"), e.get("op")
        if "contact" not in e:
            continue
        key = (str(e.get("tenant", "")), str(e["contact"]))
        t = float(e["t"])
        if (kind == "recv" and op == "offer") or (kind == "server" and op == "offered"):
            deliveries[key].append((t, int(e.get("token", 0)), str(e.get("agent", ""))))
        elif kind == "ok" and op == "accept":
            accepted.setdefault((key[0], key[1], int(e.get("token", 0))), t)
        elif kind == "server" and op in ("abandoned", "completed"):
            closed_at.setdefault(key, t)
    for e in history:
        if e.get("type") != "fault":
            continue
        data = e.get("data", {})
        pending = data.get("pending") or []
        t0 = float(e["t"])
        fault_kind = str(data.get("kind", "fault"))
        for tenant, contact, token, agent in pending:
            key = (str(tenant), str(contact))
            found = None
            for t, tok, who in deliveries.get(key, ()):
                if t <= t0:
                    continue
                if tok > int(token) or (tok == int(token) and who == agent and t > t0):
                    found = t
                    break
            took = accepted.get((key[0], key[1], int(token)), math.inf)
            if took > t0 and took < (found if found is not None else math.inf):
                verdict.survived += 1  # answered through another replica: nothing to recover
                continue
            if found is None:
                if closed_at.get(key, math.inf) > t0:
                    verdict.unrecovered += 1
                continue
            if closed_at.get(key, math.inf) < found:
                continue
            verdict.recovery_s.append(found - t0)
            verdict.recovery_by_kind.setdefault(fault_kind, []).append(found - t0)
