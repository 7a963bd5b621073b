"""TLS and mutual TLS on the gRPC port, with certificates made in the test: a client that
trusts the server's CA gets the API, health checking and reflection; one that trusts another
CA does not. With a client CA, only a valid client certificate of that CA gets in: none, one
from another CA, or an expired one is refused in the handshake and changes nothing."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis.asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from structlog.testing import capture_logs

from router import tls as tls_module
from router.admin_cli import main as admin_main
from router.auth import Role
from router.cli import serve_main
from router.client import Tls, open_aio_channel, tls_options
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import contact_service_pb2_grpc as contact_grpc
from router.pb.omniroute.v1 import resources_pb2 as pb
from router.pb.omniroute.v1 import supervisor_service_pb2 as sup_pb
from router.pb.omniroute.v1 import supervisor_service_pb2_grpc as sup_grpc
from tests.grpc.certs import Authority, Issued
from tests.grpc.conftest import Api, ApiFactory, snapshot

AGENT = pb.Agent(capacities=[pb.ChannelCapacity(channel=pb.CHANNEL_CHAT, max_contacts=1)])


@dataclass(frozen=True)
class Pki:
    """The server's CA and certificate, client certificates, and a foreign CA."""

    ca: Authority
    other_ca: Authority
    server: Issued
    client: Issued
    foreign_client: Issued
    expired_client: Issued


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, other = Authority.create(directory, "good"), Authority.create(directory, "other")
    return Pki(
        ca=ca,
        other_ca=other,
        server=ca.issue("server", server=True),
        client=ca.issue("client"),
        foreign_client=other.issue("foreign-client"),
        expired_client=ca.expired_client("expired-client"),
    )


def server_tls(pki: Pki, *, mutual: bool) -> dict[str, str]:
    """Settings overrides for a TLS (or mutual TLS) replica."""
    overrides = {"tls_cert": str(pki.server.cert), "tls_key": str(pki.server.key)}
    if mutual:
        overrides["tls_client_ca"] = str(pki.ca.pem)
    return overrides


def channel(api: Api, ca: Path, client: Issued | None = None) -> grpc.aio.Channel:
    """A TLS channel to the replica trusting `ca`, presenting `client` if given."""
    tls = Tls(ca=ca, cert=client.cert if client else None, key=client.key if client else None)
    return open_aio_channel(f"localhost:{api.service.port}", tls)


async def health_of(ch: grpc.aio.Channel) -> int:
    reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return int(reply.status)


async def reflected_services(ch: grpc.aio.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(ch)
    call = stub.ServerReflectionInfo(timeout=5)
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    reply = await call.read()
    await call.done_writing()
    return {s.name for s in reply.list_services_response.service}


async def list_agents(api: Api, ch: grpc.aio.Channel) -> int:
    reply = await sup_grpc.SupervisorServiceStub(ch).ListAgents(
        sup_pb.ListAgentsRequest(parent="tenants/t1"), metadata=api.md(Role.SUPERVISOR), timeout=5
    )
    return len(reply.agents)


async def test_tls_serves_the_api_health_and_reflection(make_api: ApiFactory, pki: Pki) -> None:
    api = await make_api(**server_tls(pki, mutual=False))
    async with channel(api, pki.ca.pem) as ch:
        assert await health_of(ch) == health_pb2.HealthCheckResponse.SERVING
        assert "omniroute.v1.ContactService" in await reflected_services(ch)
        await sup_grpc.SupervisorServiceStub(ch).CreateAgent(
            sup_pb.CreateAgentRequest(parent="tenants/t1", agent_id="ana", agent=AGENT),
            metadata=api.md(Role.SUPERVISOR),
        )
        assert await list_agents(api, ch) == 1


async def test_a_client_trusting_another_ca_or_speaking_plaintext_is_refused(
    make_api: ApiFactory, pki: Pki
) -> None:
    api = await make_api(**server_tls(pki, mutual=False))
    async with channel(api, pki.other_ca.pem) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await health_of(ch)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    async with grpc.aio.insecure_channel(f"127.0.0.1:{api.service.port}") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await health_of(ch)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_admits_a_client_certificate_of_its_ca(
    make_api: ApiFactory, pki: Pki
) -> None:
    api = await make_api(**server_tls(pki, mutual=True))
    async with channel(api, pki.ca.pem, pki.client) as ch:
        assert await health_of(ch) == health_pb2.HealthCheckResponse.SERVING
        assert "grpc.health.v1.Health" in await reflected_services(ch)
        assert await list_agents(api, ch) == 0


@pytest.mark.parametrize("client", ["none", "another CA's", "expired"])
async def test_mutual_tls_refuses_a_missing_foreign_or_expired_client_certificate(
    make_api: ApiFactory, pki: Pki, aredis: redis.asyncio.Redis, client: str
) -> None:
    api = await make_api(**server_tls(pki, mutual=True))
    presented = {"none": None, "another CA's": pki.foreign_client, "expired": pki.expired_client}
    before = await snapshot(aredis)
    async with channel(api, pki.ca.pem, presented[client]) as ch:
        for call in (
            health_of(ch),
            contact_grpc.ContactServiceStub(ch).SubmitContact(
                contact_pb.SubmitContactRequest(
                    parent="tenants/t1", contact=pb.Contact(channel=pb.CHANNEL_CHAT, issue="x")
                ),
                metadata=api.md(Role.PLATFORM),
                timeout=5,
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await snapshot(aredis) == before


async def test_commands_connect_with_ca_and_client_certificate(
    make_api: ApiFactory, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    api = await make_api(**server_tls(pki, mutual=True))
    target = ["--server", f"localhost:{api.service.port}", "--key", api.keys[("t1", Role.ADMIN)]]
    ca = ["--tls-ca", str(pki.ca.pem)]
    cert = ["--tls-client-cert", str(pki.client.cert), "--tls-client-key", str(pki.client.key)]
    capsys.readouterr()
    assert await asyncio.to_thread(admin_main, ["agents", "list", *target, *ca, *cert]) == 0
    code = await asyncio.to_thread(admin_main, ["agents", "list", *target, *ca])
    assert code == 1 and "UNAVAILABLE" in capsys.readouterr().err
    code = await asyncio.to_thread(admin_main, ["agents", "list", *target, "--tls-ca", "/nope"])
    assert code == 2 and "--tls-ca: cannot read /nope" in capsys.readouterr().err


def test_client_tls_options_come_from_flags_then_environment(tmp_path: Path) -> None:
    assert tls_options({}) is None
    assert tls_options({"OMNIROUTE_TLS": "1"}) == Tls()
    env = {"OMNIROUTE_TLS_CA": "/ca.pem", "OMNIROUTE_TLS_SERVER_NAME": "router.internal"}
    assert tls_options(env) == Tls(ca=Path("/ca.pem"), server_name="router.internal")

    class Flags:
        tls = None
        tls_ca = Path("/other.pem")
        tls_client_cert = Path("/c.pem")
        tls_client_key = Path("/k.pem")
        tls_server_name = None

    assert tls_options(env, Flags()) == Tls(
        ca=Path("/other.pem"),
        cert=Path("/c.pem"),
        key=Path("/k.pem"),
        server_name="router.internal",
    )


async def test_a_rotated_certificate_is_served_to_new_connections(
    make_api: ApiFactory, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tls_module, "CHECK_EVERY_S", 0.0)
    cert, key = tmp_path / "server.pem", tmp_path / "server-key.pem"
    cert.write_bytes(pki.server.cert.read_bytes())
    key.write_bytes(pki.server.key.read_bytes())
    api = await make_api(tls_cert=str(cert), tls_key=str(key))
    async with channel(api, pki.ca.pem) as ch:
        assert await health_of(ch) == health_pb2.HealthCheckResponse.SERVING
    rotated = pki.other_ca.issue("rotated-server", server=True)
    with capture_logs() as logs:
        cert.write_bytes(rotated.cert.read_bytes())  # a half-done rotation is not served
        async with channel(api, pki.other_ca.pem) as ch:
            with pytest.raises(grpc.aio.AioRpcError):
                await health_of(ch)
        key.write_bytes(rotated.key.read_bytes())
        os.utime(key, ns=(1, cert.stat().st_mtime_ns + 1))
        async with channel(api, pki.other_ca.pem) as ch:
            assert await health_of(ch) == health_pb2.HealthCheckResponse.SERVING
    events = [e["event"] for e in logs]
    assert "tls_certificate_reload_failed" in events
    assert "tls_certificate_reloaded" in events


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tls-cert", "CERT"], "tls_key: tls_cert and tls_key go together"),
        (["--tls-client-ca", "CA"], "tls_client_ca: needs tls_cert and tls_key"),
        (["--tls-cert", "/nope.pem", "--tls-key", "KEY"], "tls_cert: cannot read /nope.pem"),
        (["--tls-cert", "CERT", "--tls-key", "OTHER_KEY"], "tls_key: "),
        (["--tls-cert", "CERT", "--tls-key", "KEY", "--tls-client-ca", "KEY"], "tls_client_ca"),
    ],
)
def test_serve_refuses_inconsistent_or_unreadable_tls_files(
    pki: Pki, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    files = {
        "CERT": str(pki.server.cert),
        "KEY": str(pki.server.key),
        "OTHER_KEY": str(pki.client.key),
        "CA": str(pki.ca.pem),
    }
    argv = [files.get(f, f) for f in flags]
    assert serve_main(["--port", "0", *argv]) == 2
    assert message in capsys.readouterr().err
