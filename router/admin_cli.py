"""Supervisor and admin commands: ``omniroute agents|skills|rules|queues|audit|keys``.

Each command talks to a running service over gRPC (``--target HOST:PORT``, or
``OMNIROUTE_TARGET``, default ``127.0.0.1:50051``; over TLS with ``--tls-ca`` and, for
mutual TLS, ``--tls-client-cert``/``--tls-client-key``) with an API key (``--key``,
``OMNIROUTE_API_KEY``, or ``--key-file data/dev-keys.json`` with ``--role``). Output is a
rich table or line, or JSON with ``--json``. A gRPC error prints
``omniroute GROUP: CODE: details`` on stderr and exits 1; a usage error exits 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from rich.console import Console

from router import admin_commands as cmd
from router.admin_specs import (
    CHANNELS,
    RulesFileError,
    arg_type,
    capacity_spec,
    requirement_spec,
    skill_spec,
    step_spec,
    target_spec,
    weights_spec,
)
from router.client import ClientError, add_tls_arguments, connect, tls_options

ROLES = ("platform", "agent", "supervisor", "planner", "admin")
STATES = ("available", "away", "signed_out")


def _common(*, with_target: bool, role_flag: str) -> argparse.ArgumentParser:
    """Connection and output options every command takes. ``audit`` has its own
    ``--target`` (a resource) and ``keys create`` its own ``--role`` (the new key's)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("connection")
    flags = ("--target", "--server") if with_target else ("--server",)
    g.add_argument(
        *flags,
        dest="server",
        metavar="HOST:PORT",
        help="the service (default $OMNIROUTE_TARGET or 127.0.0.1:50051)",
    )
    g.add_argument("--key", help="API key (default $OMNIROUTE_API_KEY)")
    g.add_argument("--key-file", type=Path, help="dev-keys.json written by `omniroute serve`")
    g.add_argument(
        role_flag,
        dest="role",
        choices=ROLES,
        help="which key of --key-file (default supervisor; admin for `keys`)",
    )
    g.add_argument("--tenant", help="tenant (default: the key's own)")
    add_tls_arguments(g)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    return p


def _leaf(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: cmd.Handler,
    text: str,
    *,
    with_target: bool = True,
    role_flag: str = "--role",
) -> argparse.ArgumentParser:
    common = _common(with_target=with_target, role_flag=role_flag)
    p = sub.add_parser(name, help=text, description=text, parents=[common])
    p.set_defaults(handler=handler)
    return p


def _group(
    root: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    p = root.add_parser(name, help=text, description=text)
    return p.add_subparsers(dest="command", required=True, metavar="COMMAND")


def _agent_fields(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="display name")
    p.add_argument(
        "--skill", action="append", type=arg_type(skill_spec), metavar="SKILL=LEVEL",
        help="a skill and its proficiency 1-5, e.g. billing=4 or lang.en=5 (repeat)",
    )  # fmt: skip
    p.add_argument(
        "--capacity", action="append", type=arg_type(capacity_spec), metavar="CHANNEL=N",
        help=f"contacts at once on a channel ({', '.join(CHANNELS)}), e.g. chat=3 (repeat)",
    )  # fmt: skip
    p.add_argument(
        "--group", action="append", metavar="GROUP",
        help="an agent group the agent belongs to, e.g. tier2 or site.lisbon (repeat)",
    )  # fmt: skip


def _agents(root: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = _group(root, "agents", "list, show, create, update, delete agents; set their state")
    p = _leaf(sub, "list", cmd.agents_list, "list agents")
    p.add_argument("--state", choices=STATES, help="only agents in this state")
    p.add_argument("--skill", help="only agents holding this skill")
    _leaf(sub, "show", cmd.agents_show, "show one agent").add_argument("id")
    p = _leaf(sub, "create", cmd.agents_create, "create an agent (signed out)")
    p.add_argument("id", help="agent id, 1-63 of [a-z0-9_-]")
    _agent_fields(p)
    p.add_argument("--bot", action="store_true", help="a virtual agent")
    p = _leaf(sub, "update", cmd.agents_update, "replace an agent's name, skills or capacities")
    p.add_argument("id")
    _agent_fields(p)
    p.add_argument("--no-groups", action="store_true", help="take the agent out of every group")
    p.add_argument("--etag", help="only if the agent is still at this version")
    _leaf(sub, "delete", cmd.agents_delete, "delete a signed-out agent").add_argument("id")
    p = _leaf(sub, "state", cmd.agents_state, "set an agent available, away, or signed out")
    p.add_argument("id")
    p.add_argument("state", choices=STATES)
    p.add_argument("--reason", help="why, when away (e.g. break, lunch, training)")


def _skills(root: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = _group(
        root, "skills", "the skill catalogue (define, list, undefine); set or remove an agent's"
    )
    p = _leaf(sub, "define", cmd.skills_define, "declare a skill, so rules may require it")
    p.add_argument("skill", help="e.g. billing, lang.en, senior")
    p.add_argument("--description", help="what the skill means")
    _leaf(sub, "list", cmd.skills_list, "the catalogue: declared, held by agents, named by rules")
    p = _leaf(sub, "undefine", cmd.skills_undefine, "withdraw a skill's declaration")
    p.add_argument("skill")
    p = _leaf(sub, "set", cmd.skills_set, "add a skill or change its proficiency")
    p.add_argument("agent")
    p.add_argument("skill")
    p.add_argument("level", type=int, help="proficiency 1 (novice) to 5 (expert)")
    p = _leaf(sub, "remove", cmd.skills_remove, "remove a skill")
    p.add_argument("agent")
    p.add_argument("skill")


def _rules(root: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = _group(root, "rules", "list, show, put, delete routing rules")
    _leaf(sub, "list", cmd.rules_list, "list routing rules")
    _leaf(sub, "show", cmd.rules_show, "show one rule").add_argument("issue")
    p = _leaf(
        sub,
        "put",
        cmd.rules_put,
        "create or replace a rule, or several from --file (the address is --server here)",
        with_target=False,
    )
    p.add_argument("issue", nargs="?", help="the issue the rule routes (`default`: any other)")
    p.add_argument("--file", type=Path, help="YAML file of rules (`rules:` issue -> rule)")
    p.add_argument(
        "--skill", action="append", type=arg_type(requirement_spec), metavar="SKILL=LEVEL",
        help="a required skill and minimum proficiency, e.g. billing=3 (repeat)",
    )  # fmt: skip
    p.add_argument(
        "--step", action="append", type=arg_type(step_spec), metavar="AFTER:SKILL=LEVEL",
        help="relaxation: after a wait, new minimums (0 drops) and @groups added, "
        "e.g. 30s:billing=2 or 2m:@overflow (repeat)",
    )  # fmt: skip
    p.add_argument(
        "--group", action="append", metavar="GROUP",
        help="only agents of this group (repeat: of any of them); steps may add more",
    )  # fmt: skip
    p.add_argument("--sl", type=float, help="service-level share in (0, 1] (default 0.8)")
    p.add_argument(
        "--target", action="append", type=arg_type(target_spec), metavar="CHANNEL=DURATION",
        help="answer target of a channel, e.g. voice=20s (repeat)",
    )  # fmt: skip
    p.add_argument(
        "--weights", type=arg_type(weights_spec), metavar="NAME=N,...",
        help="proficiency, idle, occupancy, affinity, idle_horizon, e.g. proficiency=2,idle=1",
    )  # fmt: skip
    p.add_argument("--require-language", action="store_true", help="need skill lang.{language}")
    p.add_argument(
        "--bot-first", action="store_true",
        help="new contacts go to a bot first (an agent created with --bot); it escalates the rest",
    )  # fmt: skip
    p.add_argument("--description", help="what the rule is for")
    _leaf(sub, "delete", cmd.rules_delete, "delete a rule").add_argument("issue")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every supervisor command; the first argument is the group."""
    parser = argparse.ArgumentParser(
        prog="omniroute", description="Supervisor and admin commands of a running service."
    )
    root = parser.add_subparsers(dest="group", required=True, metavar="GROUP")
    _agents(root)
    _skills(root)
    _rules(root)
    p = _leaf(root, "queues", cmd.queues, "live queue figures per issue and channel")
    p.add_argument("--watch", type=float, metavar="SECONDS", help="refresh until Ctrl-C")
    p.add_argument("--issue", help="only this issue")
    p.add_argument("--channel", choices=CHANNELS, help="only this channel")
    p = _leaf(
        root,
        "audit",
        cmd.audit,
        "the audit log, newest first (the address is --server here)",
        with_target=False,
    )
    p.add_argument(
        "--target", dest="resource", metavar="NAME",
        help="only events about this resource, e.g. agents/ana or routingRules/billing",
    )  # fmt: skip
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    sub = _group(root, "keys", "admin: create, list, revoke API keys")
    p = _leaf(
        sub,
        "create",
        cmd.keys_create,
        "create a key; its secret is shown once (--key-role picks the --key-file entry)",
        role_flag="--key-role",
    )
    p.add_argument("--role", dest="new_role", choices=ROLES, required=True, help="the key's role")
    p.add_argument("--agent", help="for role agent: the only agent it may act for")
    p.add_argument("--name", help="a label")
    _leaf(sub, "list", cmd.keys_list, "list keys (no secrets)", role_flag="--key-role")
    p = _leaf(sub, "revoke", cmd.keys_revoke, "revoke a key at once", role_flag="--key-role")
    p.add_argument("key_id", help="the key id (or its resource name)")
    return parser


def _console() -> Console:
    if sys.stdout.isatty():
        return Console()
    return Console(file=sys.stdout, width=200, soft_wrap=True)


def _rpc_message(exc: grpc.RpcError) -> str:
    if not isinstance(exc, grpc.Call):
        return f"UNKNOWN: {exc}"
    where = getattr(exc, "where", "")
    message = f"{exc.code().name}: {exc.details()}"
    return f"{where}: {message}" if where else message


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; argv[0] is the group (``agents``, ``rules``, ...)."""
    args = list(sys.argv[1:] if argv is None else argv)
    group = args[0] if args else "supervisor"
    try:
        ns = build_parser().parse_args(args)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    role = ns.role or ("admin" if ns.group == "keys" else "supervisor")
    try:
        conn = connect(
            os.environ,
            target=ns.server,
            key=ns.key,
            key_file=ns.key_file,
            role=role,
            tenant=ns.tenant,
            tls=tls_options(os.environ, ns),
        )
        with conn.channel() as channel:
            return ns.handler(cmd.Call(ns, conn, channel, _console()))  # type: ignore[no-any-return]
    except (ClientError, cmd.UsageError) as exc:
        print(f"omniroute {group}: {exc}", file=sys.stderr)
        return 2
    except RulesFileError as exc:
        print(
            f"omniroute {group}: {ns.file}:{exc.line}: {exc.field}: {exc.problem}", file=sys.stderr
        )
        return 2
    except grpc.RpcError as exc:
        print(f"omniroute {group}: {_rpc_message(exc)}", file=sys.stderr)
        return 1
