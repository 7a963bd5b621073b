"""`omniroute demo --json`: a whole simulated floor through the real gRPC API. The
cross-channel customer keeps her agent, every contact ends completed or queued, and no
contact is ever offered to two agents at once."""

from __future__ import annotations

import json
import secrets
from collections import defaultdict
from typing import Any

import pytest
from structlog.testing import capture_logs

from router.demo import main
from router.demo_floor import CALL_LABEL, FOLLOW_UP_LABEL


def run_demo(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """Run the demo in JSON mode; its events, one per line."""
    tenant = f"demo{secrets.token_hex(4)}"  # a fresh tenant, in case REDIS_URL holds data
    with capture_logs():  # keep the service's logs out of the JSON lines
        code = main(["--json", "--seed", "7", "--tenant", tenant], configure_logging=False)
    out = capsys.readouterr().out
    assert code == 0
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def by_kind(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The events of one kind, in order."""
    return [e for e in events if e["event"] == kind]


def test_demo_routes_the_floor_over_grpc(capsys: pytest.CaptureFixture[str]) -> None:
    events = run_demo(capsys)

    # Every submitted contact reached a final or queued state.
    submitted = {e["contact"] for e in by_kind(events, "submitted")}
    finals = {e["contact"]: e for e in by_kind(events, "final")}
    assert len(submitted) >= 25 and set(finals) == submitted
    assert {f["state"] for f in finals.values()} <= {"completed", "queued"}
    assert sum(f["state"] == "completed" for f in finals.values()) >= 24

    # The customer who called, then wrote on WhatsApp, got the same agent, who saw the note.
    call, follow_up = finals[CALL_LABEL], finals[FOLLOW_UP_LABEL]
    assert (call["channel"], follow_up["channel"]) == ("voice", "whatsapp")
    assert call["customer"] == follow_up["customer"]
    assert call["outcome"] == "unresolved"
    assert follow_up["agent"] == call["agent"] != ""
    offer = next(e for e in by_kind(events, "offered") if e["contact"] == FOLLOW_UP_LABEL)
    assert offer["agent"] == call["agent"]
    assert "affinity 1.00" in offer["reason"]
    assert [h["channel"] for h in offer["history"]] == ["voice"]
    assert "factory reset" in offer["history"][0]["note"]
    (history,) = by_kind(events, "history")
    assert [h["channel"] for h in history["entries"]] == ["whatsapp", "voice"]

    # No contact was offered to two agents at once: each offer token names one agent, and
    # every offer but a contact's last was declined or expired before the next was made.
    offers: dict[str, dict[int, str]] = defaultdict(dict)
    for e in by_kind(events, "offered"):
        assert e["token"] not in offers[e["contact"]]
        offers[e["contact"]][e["token"]] = e["agent"]
    ended = {(e["contact"], e["token"]) for e in events if e["event"] in ("declined", "expired")}
    accepted = defaultdict(list)
    for e in by_kind(events, "accepted"):
        accepted[e["contact"]].append(e["token"])
    for contact, tokens in offers.items():
        *earlier, last = sorted(tokens)
        assert all((contact, t) in ended for t in earlier), (contact, tokens)
        assert accepted[contact] in ([], [last]), (contact, accepted[contact])
        if finals[contact]["state"] == "completed":
            assert finals[contact]["agent"] == tokens[last]

    # The script's declines and the one expiry happened, and offers explain themselves.
    assert len(by_kind(events, "declined")) >= 3
    assert len(by_kind(events, "expired")) == 1
    assert all("score" in e["reason"] for e in by_kind(events, "offered"))
    assert any("relaxation step 0" in e["reason"] for e in by_kind(events, "offered"))
    (stats,) = by_kind(events, "queue_stats")
    assert stats["stats"].get("waiting", "0") == "0"
