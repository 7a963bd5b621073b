"""The build tooling: protobuf generation (scripts/proto.sh) and the Dockerfile (deploy/; the
compose file and the Kubernetes manifests are tested in tests/deploy)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

COMMON_PROTO = """syntax = "proto3";

package omniroute.v1;

import "google/protobuf/timestamp.proto";

message Contact {
  string id = 1;
  google.protobuf.Timestamp arrived_at = 2;
}
"""

ROUTING_PROTO = """syntax = "proto3";

package omniroute.v1;

import "omniroute/v1/common.proto";

service RoutingService {
  rpc SubmitContact(SubmitContactRequest) returns (SubmitContactResponse);
}

message SubmitContactRequest {
  Contact contact = 1;
}

message SubmitContactResponse {
  string agent_id = 1;
}
"""

USE_GENERATED = """
import os
from router.pb.omniroute.v1 import common_pb2, routing_pb2, routing_pb2_grpc
assert routing_pb2.__file__.startswith(os.getcwd()), routing_pb2.__file__
request = routing_pb2.SubmitContactRequest(contact=common_pb2.Contact(id="c1"))
assert routing_pb2.SubmitContactRequest.FromString(request.SerializeToString()) == request
assert routing_pb2_grpc.RoutingServiceStub and routing_pb2_grpc.RoutingServiceServicer
"""


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """The repository's proto layout, with two throwaway protos (one imports the other)."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "proto.sh", tmp_path / "scripts" / "proto.sh")
    (tmp_path / "router" / "pb").mkdir(parents=True)
    (tmp_path / "router" / "__init__.py").write_text("")
    protos = tmp_path / "proto" / "omniroute" / "v1"
    protos.mkdir(parents=True)
    (protos / "common.proto").write_text(COMMON_PROTO)
    (protos / "routing.proto").write_text(ROUTING_PROTO)
    return tmp_path


def test_generated_modules_import_each_other_under_router_pb(layout: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable}
    subprocess.run(["bash", "scripts/proto.sh"], cwd=layout, env=env, check=True)
    generated = layout / "router" / "pb" / "omniroute" / "v1"
    assert (generated / "__init__.py").is_file()
    assert (layout / "router" / "pb" / "omniroute" / "__init__.py").is_file()
    assert (layout / "router" / "pb" / "__init__.py").is_file()
    for name in ("routing_pb2.pyi", "routing_pb2_grpc.pyi", "common_pb2.pyi"):
        assert (generated / name).is_file(), name
    for module in generated.glob("*.py*"):
        assert "from omniroute.v1 import" not in module.read_text(), module.name
    subprocess.run([sys.executable, "-W", "error", "-c", USE_GENERATED], cwd=layout, check=True)


def test_regenerating_drops_modules_of_deleted_protos(layout: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable}
    subprocess.run(["bash", "scripts/proto.sh"], cwd=layout, env=env, check=True)
    (layout / "proto" / "omniroute" / "v1" / "routing.proto").unlink()
    subprocess.run(["bash", "scripts/proto.sh"], cwd=layout, env=env, check=True)
    assert not (layout / "router" / "pb" / "omniroute" / "v1" / "routing_pb2.py").exists()


def test_dockerfile_runs_omniroute_serve_as_a_non_root_user() -> None:
    lines = (REPO / "deploy" / "Dockerfile").read_text().splitlines()
    assert 'ENTRYPOINT ["omniroute"]' in lines
    assert 'CMD ["serve", "--host", "0.0.0.0", "--port", "50051"]' in lines
    assert "EXPOSE 50051" in lines
    assert "USER omniroute" in lines
    assert any(line.startswith("FROM ${PYTHON_IMAGE}") for line in lines)
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in lines
