"""Settings: one frozen value built from the environment and command-line flags.

Nothing else in Omniroute reads the environment. Every setting has an ``OMNIROUTE_*``
variable; ``REDIS_URL`` names the Redis server (none: start an embedded one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from router.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class Settings:
    """How a replica runs. Durations in seconds."""

    redis_url: str = ""
    host: str = "127.0.0.1"
    port: int = 50051
    data_dir: Path = Path("data")
    offer_timeout_s: float = 20.0
    max_missed_offers: int = 3
    presence_timeout_s: float = 60.0
    #: After Redis restarted, failed over or lost data: seconds routing pauses while agents'
    #: desktops reconnect and re-assert what they hold (check_epoch.lua).
    recovery_hold_s: float = 2.0
    history_length: int = 50
    queue_scan: int = 256
    tick_s: float = 1.0
    sweep_s: float = 0.5
    mirror_refresh_s: float = 30.0
    idempotency_ttl_s: int = 86_400
    audit_maxlen: int = 100_000
    #: On SIGTERM: seconds in-flight RPCs and open streams get to finish before cancelled.
    grace_s: float = 10.0
    #: gRPC max connection age (the server sends GOAWAY after it, +-10 % jitter, so clients
    #: reconnect and spread onto new replicas) and the grace RPCs then get to finish.
    max_connection_age_s: float = 300.0
    max_connection_age_grace_s: float = 30.0
    dev_keys: bool = True
    dev_tenant: str = "demo"
    web_port: int = 0
    web_host: str = "127.0.0.1"
    metrics_port: int = 0
    #: Trace exporter: ``off`` (no tracing work at all) or ``otlp`` (OTLP/gRPC, set up by
    #: the standard OTEL_* variables, which the OpenTelemetry SDK reads; router/tracing.py).
    trace_exporter: str = "off"
    log_json: bool = True
    log_level: str = "info"
    #: When a routing pass assigns jointly (OR-Tools): ``auto`` (>= 2 contacts waiting and
    #: >= 2 agents with a free slot) or ``off`` (always greedy).
    joint_assignment: str = "auto"
    #: Candidates kept in each decision's explanation (0: only the chosen one).
    explain_candidates: int = 10
    #: TLS on the gRPC port: the server's certificate chain and key (PEM files; both or
    #: neither), and the CA whose client certificates are required (mutual TLS; optional).
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    #: Calls per second each tenant may make on this replica (token bucket; 0: no limit),
    #: its burst (0: one second's worth), and how long a call over it may wait for its token
    #: (0: refused at once). A tenant's own figure in Redis wins.
    rate_limit_per_s: float = 0.0
    rate_limit_burst: int = 0
    rate_limit_wait_s: float = 0.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Defaults, then ``OMNIROUTE_<NAME>`` variables, then `overrides` (flags)."""
        values: dict[str, Any] = {}
        if environ.get("REDIS_URL"):
            values["redis_url"] = environ["REDIS_URL"]
        for f in fields(cls):
            raw = environ.get(f"OMNIROUTE_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, raw, type(getattr(cls(), f.name)))
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = replace(cls(), **values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """InvalidArgument naming the setting when one is out of range."""
        if not 0 < self.offer_timeout_s <= 3600:
            raise InvalidArgument("offer_timeout_s", "must be in (0, 3600]")
        if not 0 <= self.port <= 65535:
            raise InvalidArgument("port", "must be 0..65535")
        if not 0 <= self.web_port <= 65535:
            raise InvalidArgument("web_port", "must be 0..65535 (0: no web view)")
        if not 0 <= self.metrics_port <= 65535:
            raise InvalidArgument("metrics_port", "must be 0..65535 (0: no metrics)")
        if self.trace_exporter not in ("off", "otlp"):
            raise InvalidArgument("trace_exporter", "must be off or otlp")
        if self.grace_s < 0:
            raise InvalidArgument("grace_s", "must be >= 0")
        if self.max_connection_age_s < 1:
            raise InvalidArgument("max_connection_age_s", "must be >= 1")
        if self.max_connection_age_grace_s < 0:
            raise InvalidArgument("max_connection_age_grace_s", "must be >= 0")
        if self.recovery_hold_s < 0:
            raise InvalidArgument("recovery_hold_s", "must be >= 0")
        if self.presence_timeout_s <= 0:
            raise InvalidArgument("presence_timeout_s", "must be positive")
        if not 1 <= self.history_length <= 1000:
            raise InvalidArgument("history_length", "must be 1..1000")
        if self.joint_assignment not in ("auto", "off"):
            raise InvalidArgument("joint_assignment", "must be auto or off")
        if not 0 <= self.explain_candidates <= 50:
            raise InvalidArgument("explain_candidates", "must be 0..50")
        if self.max_missed_offers < 0:
            raise InvalidArgument("max_missed_offers", "must be >= 0 (0: never set away)")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise InvalidArgument("tls_key", "tls_cert and tls_key go together")
        if self.tls_client_ca and not self.tls_cert:
            raise InvalidArgument("tls_client_ca", "needs tls_cert and tls_key (mutual TLS)")
        if not 0 <= self.rate_limit_per_s <= 1_000_000:
            raise InvalidArgument("rate_limit_per_s", "must be 0..1000000 (0: no limit)")
        if not 0 <= self.rate_limit_burst <= 1_000_000:
            raise InvalidArgument("rate_limit_burst", "must be 0..1000000 (0: one second's worth)")
        if not 0 <= self.rate_limit_wait_s <= 10:
            raise InvalidArgument("rate_limit_wait_s", "must be 0..10 (0: refuse at once)")


def _parse(name: str, raw: str, kind: type) -> Any:
    try:
        if kind is bool:
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes")
        if kind is Path:
            return Path(raw)
        return kind(raw)
    except ValueError as exc:
        raise InvalidArgument(f"OMNIROUTE_{name.upper()}", f"cannot read {raw!r}") from exc
