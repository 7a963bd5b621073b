"""The ``omniroute`` command. Each subcommand lives beside the code it drives:
``serve`` here, ``demo`` in ``router.demo``, the supervisor commands (agents, skills,
rules, queues, audit, keys) in ``router.admin_cli``, ``simulate`` and ``staff`` in
``simulations``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from router import logs
from router.auth import TENANT_RE, Role
from router.config import Settings
from router.errors import InvalidArgument

SUBCOMMANDS = {
    "serve": "run the gRPC routing service (embedded Redis unless REDIS_URL is set)",
    "web": "supervisor live web view as its own process, beside the service's Redis",
    "demo": "run the service with a simulated platform and agents, and show the routing",
    "agents": "supervisor: list, show, create, update, delete agents",
    "skills": "supervisor: set or remove an agent's skill",
    "rules": "supervisor: list, show, put, delete routing rules",
    "queues": "supervisor: live queue figures per issue and channel",
    "audit": "supervisor: the audit log",
    "explain": "supervisor: why a contact went to its agent (candidates, scores, history)",
    "keys": "admin: create, list, revoke API keys",
    "bootstrap": "operator: create a first admin key for a tenant directly in REDIS_URL",
    "tenants": "operator: each tenant's Redis Cluster slot and node; move a hot tenant",
    "simulate": "planner: simulate a scenario with the live routing policy",
    "staff": "planner: Erlang C/A staffing for an interval or a forecast",
    "plan": "planner: forecast, staffing and a week's shift schedule, checked by simulation",
}


def _usage() -> str:
    lines = ["usage: omniroute COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<9} {text}" for name, text in SUBCOMMANDS.items()]
    lines += ["", "`omniroute COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``omniroute`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "serve":
        return serve_main(rest)
    if command == "web":
        from router.web.cli import main as web_main

        return int(web_main(rest))
    if command == "demo":
        from router.demo import main as demo_main

        return int(demo_main(rest))
    if command in ("agents", "skills", "rules", "queues", "audit", "keys"):
        from router.admin_cli import main as admin_main

        return int(admin_main([command, *rest]))
    if command == "explain":
        from router.explain_cli import main as explain_main

        return int(explain_main(rest))
    if command == "bootstrap":
        return bootstrap_main(rest)
    if command == "tenants":
        from router.tenants_cli import main as tenants_main

        return int(tenants_main(rest))
    if command == "simulate":
        from simulations.cli import main as simulate_main

        return int(simulate_main(rest))
    if command == "plan":
        from simulations.planning.cli import main as plan_main

        return int(plan_main(rest))
    if command == "staff":
        from simulations.cli_staff import main as staff_main

        return int(staff_main(rest))
    print(f"omniroute: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
    return 2


def serve_parser() -> argparse.ArgumentParser:
    """Flags of ``omniroute serve`` (each also an OMNIROUTE_* variable)."""
    p = argparse.ArgumentParser(prog="omniroute serve", description=SUBCOMMANDS["serve"])
    p.add_argument(
        "--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)"
    )
    p.add_argument("--port", type=int, help="gRPC port (default 50051; 0 picks a free one)")
    p.add_argument(
        "--data-dir", type=Path, help="embedded Redis data and dev keys (default ./data)"
    )
    p.add_argument(
        "--offer-timeout",
        type=float,
        dest="offer_timeout_s",
        help="seconds an offer waits for an answer (default 20)",
    )
    p.add_argument(
        "--max-missed-offers",
        type=int,
        help="offers let expire in a row before the agent is set away (default 3)",
    )
    p.add_argument(
        "--presence-timeout",
        type=float,
        dest="presence_timeout_s",
        help="seconds without heartbeat before an agent is signed out (default 60)",
    )
    p.add_argument(
        "--recovery-hold",
        type=float,
        dest="recovery_hold_s",
        help="seconds routing pauses after a Redis restart or failover while desktops "
        "re-assert what they hold (default 2)",
    )
    p.add_argument("--history-length", type=int, help="history entries kept per customer")
    p.add_argument(
        "--grace",
        type=float,
        dest="grace_s",
        help="seconds RPCs and streams get to finish on SIGTERM before cancelled (default 10)",
    )
    p.add_argument(
        "--max-connection-age",
        type=float,
        dest="max_connection_age_s",
        help="seconds before a client connection is asked to reconnect (default 300)",
    )
    p.add_argument(
        "--max-connection-age-grace",
        type=float,
        dest="max_connection_age_grace_s",
        help="seconds RPCs on an aged connection get to finish (default 30)",
    )
    p.add_argument(
        "--web-port", type=int, help="also serve the supervisor web view on this port (0: off)"
    )
    p.add_argument("--web-host", help="address of the web view (default 127.0.0.1)")
    p.add_argument(
        "--metrics-port", type=int, help="serve Prometheus /metrics on this port (0: off)"
    )
    p.add_argument(
        "--trace-exporter",
        choices=("off", "otlp"),
        help="OpenTelemetry traces: off (default) or otlp (OTEL_EXPORTER_OTLP_ENDPOINT, ...)",
    )
    p.add_argument("--tls-cert", help="PEM certificate chain: serve gRPC over TLS (with --tls-key)")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument(
        "--tls-client-ca", help="PEM CA: require client certificates it signed (mutual TLS)"
    )
    p.add_argument(
        "--rate-limit",
        type=float,
        dest="rate_limit_per_s",
        help="calls/s each tenant may make on this replica (default 0: no limit; a tenant's "
        "own figure, set with `omniroute tenants limit`, wins)",
    )
    p.add_argument(
        "--rate-limit-burst",
        type=int,
        help="calls a tenant may make at once (bucket size; default: one second's worth)",
    )
    p.add_argument(
        "--rate-limit-wait",
        type=float,
        dest="rate_limit_wait_s",
        help="seconds a call over the limit may wait for its token before it is refused "
        "(default 0: refused at once)",
    )
    p.add_argument("--log-format", choices=("json", "console"), help="log format (default json)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    p.add_argument(
        "--no-dev-keys",
        action="store_true",
        help="do not create development API keys on the embedded default",
    )
    return p


def serve_main(argv: Sequence[str]) -> int:
    """``omniroute serve``."""
    ns = serve_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(ns).items() if k not in ("log_format", "no_dev_keys")}
    if ns.log_format:
        overrides["log_json"] = ns.log_format == "json"
    if ns.no_dev_keys:
        overrides["dev_keys"] = False
    from router.tls import ServerFiles
    from router.tls import load as load_tls

    try:
        settings = Settings.from_env(os.environ, **overrides)
        files = ServerFiles.of(settings)
        if files is not None:
            load_tls(files)  # a bad file stops here with its setting named, not in a traceback
    except InvalidArgument as exc:
        print(f"omniroute serve: {exc}", file=sys.stderr)
        return 2
    logs.configure(json=settings.log_json, level=settings.log_level)
    from router.server import run

    try:
        return asyncio.run(run(settings))
    except KeyboardInterrupt:
        return 0


def bootstrap_main(argv: Sequence[str]) -> int:
    """``omniroute bootstrap``: the first admin key of a tenant, written straight to Redis
    (for deployments with REDIS_URL, where no development keys are made)."""
    p = argparse.ArgumentParser(prog="omniroute bootstrap", description=SUBCOMMANDS["bootstrap"])
    p.add_argument("--tenant", required=True, help="tenant id, e.g. acme")
    p.add_argument("--role", default="admin", choices=[r.value for r in Role])
    p.add_argument("--name", default="bootstrap key", help="label of the key")
    ns = p.parse_args(argv)
    url = os.environ.get("REDIS_URL", "")
    if not url:
        print("omniroute bootstrap: set REDIS_URL to the service's Redis", file=sys.stderr)
        return 2
    if not TENANT_RE.match(ns.tenant):
        print(
            "omniroute bootstrap: --tenant: 1-63 of [a-z0-9-], starting with a letter",
            file=sys.stderr,
        )
        return 2
    logs.configure(json=True, level="warning")
    return asyncio.run(_bootstrap(url, ns.tenant, Role(ns.role), ns.name))


async def _bootstrap(url: str, tenant: str, role: Role, name: str) -> int:
    from queues.state import RedisState
    from router.domain import TenantId
    from router.server import redis_client
    from router.supervision import Supervision

    redis = redis_client(url)
    try:
        view, secret = await Supervision(RedisState(redis)).create_api_key(
            TenantId(tenant), role, "", name, "bootstrap"
        )
    finally:
        await redis.aclose()
    print(f"{view.role.value} key for tenant {tenant} (shown once):\n{secret}")
    return 0
