"""What ``omniroute demo`` shows: one line per routing event as it happens, then where
each contact went, the cross-channel customer's history and the queue figures. With
``--json`` the same facts are JSON lines (one object per event, ``event`` naming it).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.json_format import MessageToDict
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from router.admin_specs import channel_label
from router.cli_render import enum_label, queue_table, short, time_text
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import resources_pb2 as pb

_STYLE = {
    "accepted": "green",
    "declined": "yellow",
    "expired": "red",
    "completed": "cyan",
}


def history_item(h: pb.HistoryEntry) -> dict[str, str]:
    """One history entry, flat and readable."""
    return {
        "channel": channel_label(h.channel),
        "issue": h.issue,
        "agent": short(h.agent) if h.agent else "",
        "outcome": enum_label(pb.Outcome, h.outcome, "OUTCOME_"),
        "note": h.note,
        "time": time_text(h.time),
    }


@dataclass
class Recorder:
    """Collects the demo's events and prints each as it happens."""

    console: Console
    json: bool
    started: float = field(default_factory=time.monotonic)
    events: list[dict[str, Any]] = field(default_factory=list)

    def elapsed(self) -> float:
        """Seconds since the demo began."""
        return round(time.monotonic() - self.started, 3)

    def emit(self, event: str, **fields: Any) -> None:
        """Record one event and print it."""
        record = {"event": event, "t": self.elapsed(), **fields}
        self.events.append(record)
        if self.json:
            print(json.dumps(record), flush=True)
        else:
            self._line(record)

    def say(self, text: str) -> None:
        """A line of narration (not in JSON output)."""
        if not self.json:
            self.console.print(text)

    def _print(self, text: str) -> None:
        # Event lines stay one line each (a terminal narrower than the line scrolls it).
        self.console.print(text, soft_wrap=True, highlight=False)

    def _line(self, r: dict[str, Any]) -> None:
        t = f"[dim]{r['t']:5.1f}s[/]"
        kind = r["event"]
        if kind == "submitted":
            self._print(
                f"{t} [bold]{r['contact']}[/] {r['channel']:<8} {r['issue']:<15} "
                f"{r['language']:<2} p{r['priority']}  arrives ({r['customer']})"
            )
        elif kind == "offered":
            self._print(
                f"{t} [bold]{r['contact']}[/] {r['channel']:<8} {r['issue']:<15} "
                f"{r['language']:<2} → [bold magenta]{r['agent']:<6}[/] "
                f"[dim]{escape(r['reason'])}[/]"
            )
            for h in r["history"]:
                self._print(
                    f"{'':>7}   [italic]history shown to {r['agent']}: {h['channel']} "
                    f"{h['issue']} with {h['agent'] or '-'}, {h['outcome']}: "
                    f"“{escape(h['note'])}”[/]"
                )
        else:
            style = _STYLE.get(kind, "white")
            what = {
                "accepted": f"accepted by {r['agent']}",
                "declined": f"declined by {r['agent']}: back to the queue ahead of newer ones",
                "expired": f"offer to {r['agent']} expired unanswered: back to the queue",
                "completed": f"completed by {r['agent']}: {r.get('outcome', '')}",
            }.get(kind, f"{kind} ({r.get('agent', '')})")
            self._print(f"{t} [bold]{r['contact']}[/] {'':<29} [{style}]{what}[/]")


def offers_of(events: list[dict[str, Any]], label: str) -> list[str]:
    """The agents `label` was offered to, in order."""
    return [e["agent"] for e in events if e["event"] == "offered" and e["contact"] == label]


def final_table(events: list[dict[str, Any]], finals: list[dict[str, Any]]) -> Table:
    """Where each contact went."""
    table = Table(title="Where each contact went", title_justify="left")
    for column in ("contact", "customer", "channel", "issue", "lang", "prio", "offered to"):
        table.add_column(column)
    for column in ("state", "agent", "outcome"):
        table.add_column(column)
    for f in finals:
        table.add_row(
            f["contact"],
            f["customer"],
            f["channel"],
            f["issue"],
            f["language"],
            str(f["priority"]),
            " → ".join(offers_of(events, f["contact"])) or "-",
            f["state"],
            f["agent"] or "-",
            f["outcome"],
        )
    return table


def history_table(customer: str, items: list[dict[str, str]]) -> Table:
    """The cross-channel customer's history, newest first."""
    table = Table(title=f"History of customer {customer} (newest first)", title_justify="left")
    for column in ("time (UTC)", "channel", "issue", "agent", "outcome", "note"):
        table.add_column(column)
    for h in items:
        table.add_row(h["time"], h["channel"], h["issue"], h["agent"], h["outcome"], h["note"])
    return table


def show_summary(
    rec: Recorder,
    finals: list[dict[str, Any]],
    customer: str,
    history: list[dict[str, str]],
    stats: contact_pb.QueueStats,
) -> None:
    """The closing tables, or their JSON lines."""
    if rec.json:
        for f in finals:
            rec.emit("final", **f)
        rec.emit("history", customer=customer, entries=history)
        rec.emit("queue_stats", stats=MessageToDict(stats))
        return
    rec.console.print()
    rec.console.print(final_table(rec.events, finals))
    rec.console.print(history_table(customer, history))
    rec.console.print(queue_table(stats))
