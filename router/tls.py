"""TLS and mutual TLS for the gRPC port: server credentials from PEM files.

``--tls-cert`` and ``--tls-key`` turn TLS on; ``--tls-client-ca`` also requires every client
to present a certificate signed by that CA (mutual TLS), checked in the handshake, before any
RPC: a missing, foreign or expired client certificate never reaches the API-key check. The
files are checked at start-up (readable PEM, key matching the certificate) and re-read when
they change on disk, so a rotated certificate is served to new connections without a
restart; a rotation caught half-written is ignored until the files agree again.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import grpc
import structlog

from router.config import Settings
from router.errors import InvalidArgument

log = structlog.get_logger(__name__)

#: How often (at most) a handshake looks at the files' modification times.
CHECK_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class ServerFiles:
    """Where the server's certificate chain, its key and the client CA are."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    @classmethod
    def of(cls, settings: Settings) -> ServerFiles | None:
        """The settings' TLS files, or None when TLS is off."""
        if not settings.tls_cert:
            return None
        ca = Path(settings.tls_client_ca) if settings.tls_client_ca else None
        return cls(Path(settings.tls_cert), Path(settings.tls_key), ca)

    def stamp(self) -> tuple[tuple[int, int], ...]:
        """Modification time and size of each file (a change means: read them again)."""
        paths = (self.cert, self.key, *((self.client_ca,) if self.client_ca else ()))
        return tuple((st.st_mtime_ns, st.st_size) for st in (os.stat(p) for p in paths))


@dataclass(frozen=True, slots=True)
class Pem:
    """The files' contents, checked."""

    cert: bytes
    key: bytes
    client_ca: bytes | None

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        """What gRPC serves."""
        return grpc.ssl_server_certificate_configuration([(self.key, self.cert)], self.client_ca)


def _read(path: Path, setting: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidArgument(setting, f"cannot read {path}: {exc.strerror}") from exc
    if b"-----BEGIN " not in data:
        raise InvalidArgument(setting, f"{path} is not a PEM file")
    return data


def load(files: ServerFiles) -> Pem:
    """Read and check the files; InvalidArgument naming the setting that is wrong."""
    cert = _read(files.cert, "tls_cert")
    key = _read(files.key, "tls_key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(files.cert, files.key)
    except ssl.SSLError as exc:
        raise InvalidArgument(
            "tls_key", f"{files.key} is not the private key of {files.cert} ({exc.reason})"
        ) from exc
    client_ca = None
    if files.client_ca is not None:
        client_ca = _read(files.client_ca, "tls_client_ca")
        try:
            context.load_verify_locations(cafile=str(files.client_ca))
        except ssl.SSLError as exc:
            raise InvalidArgument(
                "tls_client_ca", f"{files.client_ca} holds no CA certificate ({exc.reason})"
            ) from exc
    return Pem(cert, key, client_ca)


class ServerCredentials:
    """The port's credentials; gRPC asks ``fetch`` at each handshake whether they changed."""

    def __init__(self, files: ServerFiles) -> None:
        self.files = files
        self._stamp = files.stamp()
        self._pem = load(files)
        self._checked = time.monotonic()
        self._lock = threading.Lock()  # gRPC may call fetch from several of its threads

    @property
    def mutual(self) -> bool:
        """Whether clients must present a certificate."""
        return self.files.client_ca is not None

    def credentials(self) -> grpc.ServerCredentials:
        """For ``server.add_secure_port``."""
        fetch = cast(Callable[[], grpc.ServerCertificateConfiguration], self.fetch)  # or None
        return grpc.dynamic_ssl_server_credentials(
            self._pem.configuration(), fetch, require_client_authentication=self.mutual
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """A new configuration when the files changed and agree again, else None."""
        now = time.monotonic()
        if now - self._checked < CHECK_EVERY_S or not self._lock.acquire(blocking=False):
            return None
        try:
            self._checked = now
            stamp = self.files.stamp()
            if stamp == self._stamp:
                return None
            pem = load(self.files)
            if pem == self._pem:
                self._stamp = stamp
                return None
            self._stamp, self._pem = stamp, pem
            log.info("tls_certificate_reloaded", cert=str(self.files.cert))
            return pem.configuration()
        except (OSError, InvalidArgument) as exc:
            log.warning("tls_certificate_reload_failed", error=str(exc), keeping="previous")
            return None
        finally:
            self._lock.release()
