"""The client side of the gRPC API, shared by the command-line tools and the demo: where
the service is, which API key to send, and channels that carry it.

A key is sent as ``authorization: Bearer {key}`` metadata on every call. Its tenant is in
the clear (``omr_{tenant}_{key id}_...``), so the tools need no separate tenant flag.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True, slots=True)
class Connection:
    """A service address, an API key and the tenant it acts for."""

    target: str
    key: str
    tenant: str

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
        return grpc.insecure_channel(self.target)

    def aio_channel(self) -> grpc.aio.Channel:
        """An asyncio channel (the caller closes it)."""
        return grpc.aio.insecure_channel(self.target)


def connect(
    environ: Mapping[str, str],
    *,
    target: str | None = None,
    key: str | None = None,
    key_file: Path | None = None,
    role: str = "supervisor",
    tenant: str | None = None,
) -> Connection:
    """Flags first, then ``OMNIROUTE_TARGET`` / ``OMNIROUTE_API_KEY``, then defaults."""
    address = target or environ.get("OMNIROUTE_TARGET") or DEFAULT_TARGET
    if key_file is not None:
        secret = read_key_file(key_file, role)
    else:
        secret = key or environ.get("OMNIROUTE_API_KEY", "")
    if not secret:
        raise ClientError(
            "no API key: pass --key KEY or --key-file data/dev-keys.json, or set OMNIROUTE_API_KEY"
        )
    return Connection(address, secret, tenant or tenant_of_key(secret))
