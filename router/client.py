"""The client side of the gRPC API, shared by the command-line tools and the demo: where
the service is, which API key to send, how to reach a TLS port, and channels that carry it.

A key is sent as ``authorization: Bearer {key}`` metadata on every call. Its tenant is in
the clear (``omr_{tenant}_{key id}_...``), so the tools need no separate tenant flag.

TLS (``--tls``, or implied by any of the options below): the server's certificate is checked
against ``--tls-ca`` (else the system's roots); ``--tls-client-cert`` and
``--tls-client-key`` present a client certificate (mutual TLS); ``--tls-server-name`` is the
name to expect in the server's certificate when the target address does not carry it.
Each option is also an ``OMNIROUTE_TLS_*`` variable (see ``tls_options``).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

#: Where ``omniroute serve`` listens by default.
DEFAULT_TARGET = "127.0.0.1:50051"
#: Seconds a command-line call may take before it gives up (DEADLINE_EXCEEDED).
CALL_TIMEOUT_S = 15.0
_KEY_RE = re.compile(r"^omr_([a-z][a-z0-9-]{0,62})_([a-z0-9]{8})_[0-9a-f]{48}$")

Metadata = tuple[tuple[str, str], ...]


class ClientError(Exception):
    """A problem on the caller's side (no key, unreadable key file): a usage error."""


def tenant_of_key(key: str) -> str:
    """The tenant an API key belongs to, read from the key itself."""
    match = _KEY_RE.match(key)
    if match is None:
        raise ClientError(
            "the API key is not an Omniroute key (omr_{tenant}_{id}_{secret}); check "
            "--key, OMNIROUTE_API_KEY or --key-file"
        )
    return match.group(1)


def read_key_file(path: Path, role: str) -> str:
    """The `role` entry of a ``dev-keys.json`` written by ``omniroute serve``."""
    try:
        keys = json.loads(path.read_text())
    except OSError as exc:
        raise ClientError(f"cannot read key file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ClientError(f"key file {path} is not JSON: {exc}") from exc
    if not isinstance(keys, dict) or not isinstance(keys.get(role), str):
        roles = ", ".join(sorted(keys)) if isinstance(keys, dict) else "none"
        raise ClientError(f"key file {path} has no {role!r} key (it has: {roles})")
    return str(keys[role])


def auth_metadata(key: str) -> Metadata:
    """The metadata that authenticates a call with `key`."""
    return (("authorization", f"Bearer {key}"),)


#: Client TLS options: flag destination -> environment variable.
TLS_VARIABLES = {
    "tls": "OMNIROUTE_TLS",
    "tls_ca": "OMNIROUTE_TLS_CA",
    "tls_client_cert": "OMNIROUTE_TLS_CLIENT_CERT",
    "tls_client_key": "OMNIROUTE_TLS_CLIENT_KEY",
    "tls_server_name": "OMNIROUTE_TLS_SERVER_NAME",
}


@dataclass(frozen=True, slots=True)
class Tls:
    """How a client reaches a TLS port: the CA that signed the server's certificate (None:
    the system's roots), a client certificate and key (mutual TLS), a name to expect."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str = ""

    def credentials(self) -> grpc.ChannelCredentials:
        """Channel credentials from the files (ClientError when one cannot be read)."""
        if (self.cert is None) != (self.key is None):
            raise ClientError("--tls-client-cert and --tls-client-key go together")
        return grpc.ssl_channel_credentials(
            root_certificates=_read_pem(self.ca, "--tls-ca"),
            private_key=_read_pem(self.key, "--tls-client-key"),
            certificate_chain=_read_pem(self.cert, "--tls-client-cert"),
        )

    def options(self) -> list[tuple[str, Any]]:
        """Channel options (the expected server name, when given)."""
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def _read_pem(path: Path | None, flag: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ClientError(f"{flag}: cannot read {path}: {exc.strerror}") from exc


def add_tls_arguments(parser: argparse.ArgumentParser | Any) -> None:
    """The client TLS flags, on a parser or an argument group."""
    parser.add_argument(
        "--tls", action="store_true", default=None, help="TLS (default $OMNIROUTE_TLS)"
    )
    parser.add_argument(
        "--tls-ca", type=Path, help="PEM CA of the server's certificate (implies --tls)"
    )
    parser.add_argument(
        "--tls-client-cert", type=Path, help="PEM client certificate, for mutual TLS"
    )
    parser.add_argument("--tls-client-key", type=Path, help="PEM key of --tls-client-cert")
    parser.add_argument(
        "--tls-server-name", help="name the server's certificate must carry, if not the target's"
    )


def tls_options(environ: Mapping[str, str], flags: Any = None) -> Tls | None:
    """TLS from flags (an argparse namespace), then ``OMNIROUTE_TLS_*``; None: plaintext."""

    def pick(name: str) -> Any:
        value = getattr(flags, name, None)
        return value if value not in (None, "") else environ.get(TLS_VARIABLES[name]) or None

    ca, cert, key = pick("tls_ca"), pick("tls_client_cert"), pick("tls_client_key")
    switch = pick("tls")
    if not (switch is True or str(switch).lower() in ("1", "true", "yes") or ca or cert or key):
        return None
    return Tls(
        ca=Path(ca) if ca else None,
        cert=Path(cert) if cert else None,
        key=Path(key) if key else None,
        server_name=str(pick("tls_server_name") or ""),
    )


def open_channel(target: str, tls: Tls | None, options: Any = ()) -> grpc.Channel:
    """A blocking channel to `target`, over TLS when `tls` is given."""
    if tls is None:
        return grpc.insecure_channel(target, options=list(options))
    return grpc.secure_channel(target, tls.credentials(), options=[*options, *tls.options()])


def open_aio_channel(target: str, tls: Tls | None, options: Any = ()) -> grpc.aio.Channel:
    """An asyncio channel to `target`, over TLS when `tls` is given."""
    if tls is None:
        return grpc.aio.insecure_channel(target, options=list(options))
    return grpc.aio.secure_channel(target, tls.credentials(), options=[*options, *tls.options()])


@dataclass(frozen=True, slots=True)
class Connection:
    """A service address, an API key, the tenant it acts for, and TLS (None: plaintext)."""

    target: str
    key: str
    tenant: str
    tls: Tls | None = None

    @property
    def metadata(self) -> Metadata:
        """Call metadata carrying the key."""
        return auth_metadata(self.key)

    @property
    def parent(self) -> str:
        """The tenant's resource name, ``tenants/{tenant}``."""
        return f"tenants/{self.tenant}"

    def name(self, collection: str, ident: str) -> str:
        """A resource name of the tenant, e.g. ``tenants/t1/agents/ana``."""
        return f"{self.parent}/{collection}/{ident}"

    def channel(self) -> grpc.Channel:
        """A blocking channel (the caller closes it)."""
        return open_channel(self.target, self.tls)

    def aio_channel(self) -> grpc.aio.Channel:
        """An asyncio channel (the caller closes it)."""
        return open_aio_channel(self.target, self.tls)


def connect(
    environ: Mapping[str, str],
    *,
    target: str | None = None,
    key: str | None = None,
    key_file: Path | None = None,
    role: str = "supervisor",
    tenant: str | None = None,
    tls: Tls | None = None,
) -> Connection:
    """Flags first, then ``OMNIROUTE_TARGET`` / ``OMNIROUTE_API_KEY``, then defaults;
    `tls` from ``tls_options``."""
    address = target or environ.get("OMNIROUTE_TARGET") or DEFAULT_TARGET
    if key_file is not None:
        secret = read_key_file(key_file, role)
    else:
        secret = key or environ.get("OMNIROUTE_API_KEY", "")
    if not secret:
        raise ClientError(
            "no API key: pass --key KEY or --key-file data/dev-keys.json, or set OMNIROUTE_API_KEY"
        )
    return Connection(address, secret, tenant or tenant_of_key(secret), tls)


def skills_of_rule(rule: Any) -> list[str]:
    """Every skill a ``RoutingRule`` message names (required or in a step), sorted."""
    names = {r.skill for r in rule.required_skills}
    names.update(r.skill for step in rule.relaxation_steps for r in step.skills)
    return sorted(names)


async def declare_skills(
    stub: Any,
    parent: str,
    skills: Iterable[str],
    metadata: Metadata,
    descriptions: Mapping[str, str] | None = None,
    timeout: float = CALL_TIMEOUT_S,
) -> None:
    """Declare `skills` in the tenant's catalogue (``SupervisorService.CreateRoutingSkill``
    on an aio stub), so rules may name them before agents hold them; a skill declared
    already is left as it is."""
    from router.pb.omniroute.v1 import resources_pb2 as pb
    from router.pb.omniroute.v1 import supervisor_service_pb2 as sup_pb

    for skill in skills:
        request = sup_pb.CreateRoutingSkillRequest(
            parent=parent,
            routing_skill_id=skill,
            routing_skill=pb.RoutingSkill(description=(descriptions or {}).get(skill, "")),
        )
        try:
            await stub.CreateRoutingSkill(request, metadata=metadata, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() is not grpc.StatusCode.ALREADY_EXISTS:
                raise
