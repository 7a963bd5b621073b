"""The Kubernetes manifests (deploy/k8s) and the Redis Cluster chart values.

Every manifest is validated, strictly (unknown fields are errors), against the Kubernetes
API schemas that kubernetes-validate ships, for the oldest Kubernetes the manifests support
and the newest it knows; checkov's Kubernetes policies run over the folder and must find
nothing but the skips justified in the manifests. Both work offline: the schemas are in
the package, and checkov runs from its own virtualenv (.venv-checkov, made by
scripts/setup.sh, since its pins would downgrade the project's packages).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from router.config import Settings
from tests.grpc.test_shutdown import STOP_MARGIN_S

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
REDIS_VALUES = REPO / "deploy" / "redis-cluster-values.yaml"
#: The oldest Kubernetes the manifests are for (native gRPC probes are GA since 1.27, the
#: PDB's unhealthyPodEvictionPolicy on by default since 1.27), and the newest schemas the
#: pinned kubernetes-validate carries.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
#: checkov policies skipped in the manifests, each with its reason written beside it.
JUSTIFIED_SKIPS = {"CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_43"}
ROUTER = {"app.kubernetes.io/name": "omniroute", "app.kubernetes.io/component": "router"}


def kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return loaded


@cache
def resources() -> dict[tuple[str, str], dict[str, Any]]:
    """Every resource the kustomization applies, by (kind, name)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for name in kustomization()["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def deployment() -> dict[str, Any]:
    return resources()[("Deployment", "omniroute")]


def router_container() -> dict[str, Any]:
    (container,) = deployment()["spec"]["template"]["spec"]["containers"]
    return container


def literal_env() -> dict[str, str]:
    return {e["name"]: e["value"] for e in router_container()["env"] if "value" in e}


def test_kustomization_applies_every_manifest_in_the_folder() -> None:
    listed = set(kustomization()["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    assert kustomization()["namespace"] == "omniroute"
    for (kind, name), doc in resources().items():
        if kind != "Namespace":
            assert doc["metadata"]["namespace"] == "omniroute", (kind, name)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_for_kubernetes(version: str) -> None:
    assert len(resources()) == 8
    for (kind, name), doc in resources().items():
        validated = kubernetes_validate.validate(doc, version, strict=True)
        assert validated == version.rsplit(".", 1)[0], (kind, name)


def test_strict_validation_refuses_a_field_kubernetes_does_not_have() -> None:
    """The control: the validator is not a no-op on what the manifests could get wrong."""
    broken = json.loads(json.dumps(deployment()))
    probe = broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    probe["grpc"]["serviceName"] = ""  # the field is `service`
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_renders_the_same_resources() -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    docs = list(yaml.safe_load_all(rendered))
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} == set(resources())
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[-1], strict=True)


def test_checkov_finds_nothing_but_the_justified_skips() -> None:
    assert CHECKOV.exists(), f"{CHECKOV} is missing: run `make install` (scripts/setup.sh)"
    env = {**os.environ, "LOG_LEVEL": "WARNING", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    run = subprocess.run(
        [str(CHECKOV), "--directory", str(K8S), "--framework", "kubernetes",
         "--output", "json", "--skip-download", "--compact"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    report = json.loads(run.stdout)
    if isinstance(report, list):
        (report,) = [r for r in report if r["check_type"] == "kubernetes"]
    summary = report["summary"]
    assert summary["failed"] == 0 and summary["parsing_errors"] == 0, summary
    assert summary["resource_count"] >= len(resources())
    skipped = report["results"]["skipped_checks"]
    assert {s["check_id"] for s in skipped} == JUSTIFIED_SKIPS
    for skip in skipped:
        assert len(skip["check_result"].get("suppress_comment", "")) > 80, skip["check_id"]
    assert summary["passed"] > 50


def test_routers_are_three_hardened_replicas_of_a_pinned_image() -> None:
    spec = deployment()["spec"]
    pod = spec["template"]["spec"]
    container = router_container()
    assert spec["replicas"] == 3
    assert spec["selector"]["matchLabels"] == ROUTER
    assert ROUTER.items() <= spec["template"]["metadata"]["labels"].items()
    name, _, tag = container["image"].rpartition(":")
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert name.endswith("omniroute") and tag == version and tag != "latest"
    assert pod["serviceAccountName"] == "omniroute"
    assert pod["automountServiceAccountToken"] is False
    account = resources()[("ServiceAccount", "omniroute")]
    assert account["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsUser"] >= 10000  # the image's user (deploy/Dockerfile: uid 10001)
    assert "USER omniroute" in (REPO / "deploy" / "Dockerfile").read_text()
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts  # the root is read-only; plans write temporary files


def test_routers_read_redis_url_from_a_secret_and_every_setting_is_real() -> None:
    env = {e["name"]: e for e in router_container()["env"]}
    assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "omniroute-redis",
        "key": "REDIS_URL",
    }
    fields = set(Settings.__dataclass_fields__)
    for name in env:
        if name.startswith("OMNIROUTE_"):
            assert name.removeprefix("OMNIROUTE_").lower() in fields, name
    settings = Settings.from_env(
        {"REDIS_URL": "redis+cluster://:pw@redis-cluster:6379/0"} | literal_env()
    )
    assert settings.metrics_port == 9464
    assert settings.max_connection_age_s == 300 and settings.max_connection_age_grace_s == 30
    # A Service named `omniroute` would inject OMNIROUTE_PORT=tcp://...: no service links.
    assert deployment()["spec"]["template"]["spec"]["enableServiceLinks"] is False


def test_probes_are_native_grpc_health_checks_on_the_service_port() -> None:
    container = router_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["args"] == ["serve", "--host", "0.0.0.0", "--port", str(ports["grpc"])]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": ports["grpc"]}, probe
    settings = Settings.from_env(literal_env())
    assert ports["metrics"] == settings.metrics_port
    annotations = deployment()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["metrics"])


def test_a_stopping_pod_leaves_the_endpoints_then_drains_within_its_grace_period() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    command = router_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pause_s = float(command[1])
    grace_s = Settings.from_env(literal_env()).grace_s
    assert pause_s >= 3  # endpoints and DNS must drop the pod before it stops listening
    # The pause, the drain, and what stopping takes beyond it (measured by test_shutdown).
    assert pause_s + grace_s + STOP_MARGIN_S <= pod["terminationGracePeriodSeconds"]


def test_services_find_the_routers_and_the_headless_one_lists_pods() -> None:
    headless = resources()[("Service", "omniroute-headless")]["spec"]
    plain = resources()[("Service", "omniroute")]["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["selector"] == ROUTER and plain["selector"] == ROUTER
    assert not headless.get("publishNotReadyAddresses", False)
    assert {p["targetPort"] for p in headless["ports"]} == {"grpc"}
    assert {p["targetPort"] for p in plain["ports"]} == {"grpc", "metrics"}


def test_disruption_budget_and_autoscaler_cover_the_routers() -> None:
    pdb = resources()[("PodDisruptionBudget", "omniroute")]["spec"]
    assert pdb["selector"]["matchLabels"] == ROUTER and pdb["maxUnavailable"] == 1
    hpa = resources()[("HorizontalPodAutoscaler", "omniroute")]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "omniroute",
    }
    assert hpa["minReplicas"] == deployment()["spec"]["replicas"] < hpa["maxReplicas"]
    (metric,) = hpa["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert "cpu" in router_container()["resources"]["requests"]  # utilisation needs it


def test_network_policy_lets_in_grpc_and_out_only_dns_and_redis() -> None:
    policy = resources()[("NetworkPolicy", "omniroute")]["spec"]
    assert policy["podSelector"]["matchLabels"] == ROUTER
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    ingress_ports = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    assert ingress_ports == {50051, 9464}
    egress = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress == {(53, "UDP"), (53, "TCP"), (6379, "TCP")}
    (redis_rule,) = [r for r in policy["egress"] if r["ports"][0]["port"] == 6379]
    assert redis_rule["to"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "redis-cluster"}}}
    ]


def test_namespace_enforces_the_restricted_pod_security_standard() -> None:
    labels = resources()[("Namespace", "omniroute")]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_redis_cluster_values_are_durable_unevicting_and_share_the_routers_secret() -> None:
    values = yaml.safe_load(REDIS_VALUES.read_text())
    assert values["cluster"] == {"nodes": 6, "replicas": 1}
    assert values["redis"]["useAOFPersistence"] == "yes"
    config = values["redis"]["configmap"].splitlines()
    assert "maxmemory-policy noeviction" in config
    assert "appendfsync everysec" in config
    assert values["persistence"]["enabled"] is True
    assert values["usePassword"] is True and "password" not in values
    secret = router_container()["env"][0]["valueFrom"]["secretKeyRef"]["name"]
    assert values["existingSecret"] == secret
    security = values["containerSecurityContext"]
    assert security["runAsNonRoot"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert values["volumePermissions"]["enabled"] is False
    readme = (REPO / "README.md").read_text()
    assert "deploy/redis-cluster-values.yaml" in readme
