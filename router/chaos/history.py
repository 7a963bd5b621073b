"""The recorded history of a chaos run: one event per line, in the order they happened.

Client operations are recorded Jepsen-style: an ``invoke`` before the call, then exactly one
of ``ok`` (the service answered yes), ``fail`` (it answered no: the operation surely did not
happen) or ``unknown`` (timeout, cancellation, broken connection: it may or may not have
happened). Every other line says what someone saw: ``recv`` (an agent's stream delivered an
offer or a withdrawal), ``server`` (a state-change notice published by a Lua script, in
commit order), ``sample`` (an agent's load hash read from Redis), ``fault`` (the nemesis or an
agent did something harmful), ``setup`` (capacities), ``final`` (a contact's state at the end).

Fields: ``t`` seconds since the run started (monotonic), ``type``, ``p`` the process
(``agent:t1:a03``, ``platform:t2``, ``nemesis``, ...), ``op``, ``id`` (links an invoke to its
completion), and as relevant ``tenant``, ``contact``, ``agent``, ``token``, ``channel``,
``error``, ``data``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

Event = dict[str, Any]

#: Completion types of a client operation.
OK, FAIL, UNKNOWN = "ok", "fail", "unknown"


class Recorder:
    """Appends events in memory (cheap enough for a few million); saved as JSON lines."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._start = clock()
        self._next_id = 0
        self._open: dict[int, Event] = {}
        self.events: list[Event] = []

    def now(self) -> float:
        """Seconds since the recorder was made."""
        return float(self._clock() - self._start)

    def add(self, type_: str, process: str, **fields: Any) -> Event:
        """Record one event that is not a client operation."""
        event: Event = {"t": round(self.now(), 6), "type": type_, "p": process}
        event.update({k: v for k, v in fields.items() if v is not None})
        self.events.append(event)
        return event

    def invoke(self, process: str, op: str, **fields: Any) -> int:
        """Record the start of a client operation; returns its id for the completion."""
        self._next_id += 1
        op_id = self._next_id
        event = self.add("invoke", process, op=op, id=op_id, **fields)
        self._open[op_id] = event
        return op_id

    def complete(self, op_id: int, type_: str, **fields: Any) -> Event:
        """Record how operation `op_id` ended (``ok``, ``fail`` or ``unknown``)."""
        invoked = self._open.pop(op_id)
        carried = {
            k: v for k, v in invoked.items() if k not in ("t", "type", "p", "op", "id", "data")
        }
        carried.update(fields)
        return self.add(type_, invoked["p"], op=invoked["op"], id=op_id, **carried)

    def ok(self, op_id: int, **fields: Any) -> Event:
        """The operation happened."""
        return self.complete(op_id, OK, **fields)

    def fail(self, op_id: int, **fields: Any) -> Event:
        """The operation surely did not happen."""
        return self.complete(op_id, FAIL, **fields)

    def unknown(self, op_id: int, **fields: Any) -> Event:
        """The operation may or may not have happened (timeout, cancel, lost connection)."""
        return self.complete(op_id, UNKNOWN, **fields)

    def close_open(self, reason: str = "run_ended") -> int:
        """Mark operations still in flight as ``unknown``; returns how many."""
        pending = list(self._open)
        for op_id in pending:
            self.unknown(op_id, error=reason)
        return len(pending)

    def save(self, path: Path) -> None:
        """Write the history as JSON lines."""
        save(self.events, path)


def save(events: Iterable[Event], path: Path) -> None:
    """Write `events` to `path`, one JSON object per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for event in events:
            f.write(json.dumps(event, separators=(",", ":")))
            f.write("\n")


def load(path: Path) -> Iterator[Event]:
    """Read a history written by :func:`save`."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)
