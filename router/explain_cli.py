"""``omniroute explain CONTACT_ID``: why a contact went to its agent, for a person.

Reads the stored explanation through ``SupervisorService.GetRoutingExplanation`` (a
supervisor or planner key) and prints it as text (``router.explain.render``), or as
JSON with ``--json``. A gRPC error prints ``omniroute explain: CODE: details`` on stderr
and exits 1; a usage error exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from router.client import ClientError, add_tls_arguments, connect, tls_options
from router.explain import render
from router.pb.omniroute.v1 import resources_pb2 as pb
from router.pb.omniroute.v1 import supervisor_service_pb2 as sup_pb
from router.pb.omniroute.v1 import supervisor_service_pb2_grpc as sup_grpc


def parser() -> argparse.ArgumentParser:
    """Flags of ``omniroute explain``."""
    p = argparse.ArgumentParser(
        prog="omniroute explain", description="why a contact went to its agent"
    )
    p.add_argument("contact", help="contact id, or its name tenants/T/contacts/C")
    p.add_argument("--server", metavar="HOST:PORT", help="default $OMNIROUTE_TARGET")
    p.add_argument("--key", help="API key (default $OMNIROUTE_API_KEY)")
    p.add_argument("--key-file", type=Path, help="dev-keys.json written by `omniroute serve`")
    p.add_argument("--role", default="supervisor", choices=("supervisor", "planner", "admin"))
    p.add_argument("--tenant", help="tenant (default: the key's own)")
    add_tls_arguments(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    return p


def as_dict(msg: pb.RoutingExplanation) -> dict[str, Any]:
    """The API explanation in the stored shape that ``render`` reads (bare ids)."""

    def bare(name: str) -> str:
        return name.rsplit("/", 1)[-1]

    def candidate(c: pb.ExplanationCandidate) -> dict[str, Any]:
        return {
            "agent": bare(c.agent),
            "score": c.score,
            "components": dict(c.components),
            "declined": c.declined_before,
        }

    return {
        "contact": bare(msg.contact),
        "agent": bare(msg.agent),
        "waited_s": msg.waited_seconds,
        "chosen": candidate(msg.chosen),
        "candidates": [candidate(c) for c in msg.candidates],
        "runner_up": bare(msg.runner_up) if msg.runner_up else "",
        "considered": msg.considered,
        "eligible": msg.eligible,
        "steps": list(msg.relaxation_steps),
        "required": {r.skill: r.min_proficiency for r in msg.required_skills},
        "joint": msg.joint,
        "history": dict(msg.history),
        "signals": dict(msg.signals),
        "summary": msg.summary,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``omniroute explain``."""
    try:
        ns = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        conn = connect(
            os.environ,
            target=ns.server,
            key=ns.key,
            key_file=ns.key_file,
            role=ns.role,
            tenant=ns.tenant,
            tls=tls_options(os.environ, ns),
        )
        name = ns.contact if "/" in ns.contact else conn.name("contacts", ns.contact)
        with conn.channel() as channel:
            stub = sup_grpc.SupervisorServiceStub(channel)
            msg = stub.GetRoutingExplanation(
                sup_pb.GetRoutingExplanationRequest(name=name), metadata=conn.metadata
            )
    except ClientError as exc:
        print(f"omniroute explain: {exc}", file=sys.stderr)
        return 2
    except grpc.RpcError as exc:
        code = exc.code().name if isinstance(exc, grpc.Call) else "UNKNOWN"
        details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        print(f"omniroute explain: {code}: {details}", file=sys.stderr)
        return 1
    if ns.json:
        print(json.dumps(MessageToDict(msg, preserving_proto_field_name=True), indent=2))
    else:
        print(render(as_dict(msg)))
    return 0
