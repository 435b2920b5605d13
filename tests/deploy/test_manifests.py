"""deploy/kubernetes and deploy/compose.yaml, checked without a cluster: every rendered
manifest validates against the Kubernetes schemas (kubernetes-validate, strict), checkov
fails no check that docs/kubernetes.md does not justify, the manifests keep the promises of
docs/kubernetes.md (probes, rolling updates, security context, grace periods), and the
compose file validates against the Compose specification's JSON schema."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerkit import ROOT, UID, run, tools
from kustomize import render

pytestmark = pytest.mark.deploy

KUBE = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("small", "production")
KUBERNETES_VERSION = "1.33.0"  # a recent release; kubernetes-validate's schemas
# uvicorn's timeout_graceful_shutdown in aiweb/cli/serve.py: requests in flight get this long
UVICORN_GRACE_S = 30


def rendered(overlay: str) -> list[dict[str, Any]]:
    return render(KUBE / "overlays" / overlay)


def by_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def pod_spec(resource: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = resource["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module")
def bin_dir() -> Path:
    return tools()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_loader_renders_as_kubectl(overlay: str) -> None:
    """The test's loader and ``kubectl kustomize`` (where installed) agree exactly."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the loader alone renders the manifests")
    out = run([kubectl, "kustomize", str(KUBE / "overlays" / overlay)])
    theirs = {(r["kind"], r["metadata"]["name"]): r for r in yaml.safe_load_all(out) if r}
    mine = {(r["kind"], r["metadata"]["name"]): r for r in rendered(overlay)}
    assert mine == theirs


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_validate_and_pass_checkov(overlay: str, bin_dir: Path, tmp_path: Path) -> None:
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(yaml.safe_dump_all(rendered(overlay), sort_keys=False))
    run(
        [
            str(bin_dir / "kubernetes-validate"),
            "--strict",
            "--quiet",
            "-k",
            KUBERNETES_VERSION,
            str(manifest),
        ]
    )
    proc = subprocess.run(
        [
            str(bin_dir / "checkov"),
            "-f",
            str(manifest),
            "--framework",
            "kubernetes",
            "--skip-download",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = json.loads(proc.stdout)
    results = report["results"]
    assert report["summary"]["passed"] > 100, report["summary"]
    justified = documented_checkov_ids()
    failed = {(c["check_id"], c["resource"]) for c in results["failed_checks"]}
    skipped = {c["check_id"] for c in results["skipped_checks"]}
    assert {check for check, _ in failed} <= justified, sorted(failed)
    assert skipped <= justified, skipped


def documented_checkov_ids() -> set[str]:
    """Check ids in docs/kubernetes.md's checkov table (``| CKV_K8S_43 | why |``)."""
    text = (ROOT / "docs" / "kubernetes.md").read_text(encoding="utf-8")
    section = text.split("## checkov", 1)[1].split("\n## ", 1)[0]
    row = re.compile(r"^\| `?(CKV2?_K8S_\d+)`? \|[^|\n]*\S[^|\n]*\|\s*$", re.MULTILINE)
    ids = set(row.findall(section))
    assert ids, "docs/kubernetes.md has no checkov table"
    return ids


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_locked_down(overlay: str) -> None:
    """Non-root, read-only root filesystem, no privilege escalation, no capabilities,
    requests and limits, Secrets for the credentials, writable volumes where aiweb writes."""
    resources = rendered(overlay)
    workloads = [*by_kind(resources, "Deployment").values(), *by_kind(resources, "Job").values()]
    assert len(workloads) == 4
    for workload in workloads:
        pod = pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == UID
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"]["drop"] == ["ALL"]
            assert set(container["resources"]) == {"requests", "limits"}
            assert container["command"][0] == "aiweb"
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert {"/var/lib/aiweb", "/tmp"} <= mounts
            refs = {next(iter(e.values()))["name"] for e in container["envFrom"]}
            assert refs == {"aiweb", "aiweb-config"}
    secret = by_kind(resources, "Secret")["aiweb"]["stringData"]
    assert {"AIWEB_DATABASE_URL", "AIWEB_BROKER_URL", "AIWEB_SECRET_KEY"} <= set(secret)
    config = by_kind(resources, "ConfigMap")["aiweb-config"]["data"]
    assert not {k for k in config if "SECRET" in k or (k.endswith("_URL") and "DATABASE" in k)}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_rolls_out_without_dropping_requests(overlay: str) -> None:
    resources = rendered(overlay)
    api = by_kind(resources, "Deployment")["aiweb-api"]
    rolling = api["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0
    assert rolling["maxSurge"] >= 1
    pod = pod_spec(api)
    (container,) = pod["containers"]
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    # the grace period covers the preStop pause plus uvicorn's graceful shutdown
    assert pod["terminationGracePeriodSeconds"] > pre_stop + UVICORN_GRACE_S
    annotations = api["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(container["ports"][0]["containerPort"])
    worker = pod_spec(by_kind(resources, "Deployment")["aiweb-worker"])
    assert worker["terminationGracePeriodSeconds"] >= 300  # a running job finishes
    assert by_kind(resources, "NetworkPolicy")
    assert by_kind(resources, "PodDisruptionBudget")["aiweb-api"]


def test_overlays_differ_as_documented() -> None:
    small, production = rendered("small"), rendered("production")
    assert by_kind(small, "Deployment")["aiweb-api"]["spec"]["replicas"] == 1
    assert not by_kind(small, "HorizontalPodAutoscaler")
    assert by_kind(small, "PodDisruptionBudget")["aiweb-api"]["spec"]["maxUnavailable"] == 1
    hpa = by_kind(production, "HorizontalPodAutoscaler")["aiweb-api"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "aiweb-api"
    assert 1 < hpa["minReplicas"] < hpa["maxReplicas"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    deployments = by_kind(production, "Deployment")
    assert "replicas" not in deployments["aiweb-api"]["spec"]  # the HPA owns it
    assert deployments["aiweb-worker"]["spec"]["replicas"] >= 2
    assert deployments["aiweb-scheduler"]["spec"]["replicas"] == 1
    assert deployments["aiweb-scheduler"]["spec"]["strategy"]["type"] == "Recreate"
    for resources in (small, production):
        config = by_kind(resources, "ConfigMap")["aiweb-config"]["data"]
        assert config["AIWEB_JOBS__CONCURRENCY"] == "0"  # in-process jobs off
        (job,) = by_kind(resources, "Job").values()
        assert pod_spec(job)["containers"][0]["command"] == ["aiweb", "db", "upgrade"]


COMPOSE = ROOT / "deploy" / "compose.yaml"


def test_compose_validates_against_the_compose_spec(bin_dir: Path) -> None:
    run(
        [str(bin_dir / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)]
    )
    spec = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = spec["services"]
    assert {
        "api",
        "worker",
        "scheduler",
        "migrate",
        "postgres",
        "redis",
        "prometheus",
        "grafana",
    } <= set(services)
    assert "pgvector" in services["postgres"]["image"]
    for name in ("api", "worker", "scheduler"):
        conditions = services[name]["depends_on"]
        assert conditions["migrate"]["condition"] == "service_completed_successfully"
        assert conditions["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["api"]["healthcheck"]["test"][0] == "CMD"
    for name in ("worker", "scheduler", "migrate"):  # no HTTP: the image's check is off
        assert services[name]["healthcheck"] == {"disable": True}
    # secrets come from env files that exist only as examples in the repository
    for service in services.values():
        for env_file in service.get("env_file", []):
            assert (COMPOSE.parent / f"{env_file}.example").is_file(), env_file
            assert "environment" not in service
    text = COMPOSE.read_text(encoding="utf-8")
    assert "AIWEB_SECRET_KEY" not in text
    assert "PASSWORD=" not in text
    # Prometheus and Grafana run the repository's files
    volumes = [v for s in services.values() for v in s.get("volumes", [])]
    assert "./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in volumes
    assert any(v.startswith("./grafana/aiweb-dashboard.json:") for v in volumes)


def compose_aiweb_commands() -> dict[str, list[str]]:
    """``service -> command`` of the compose services that run the aiweb image."""
    spec = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return {
        name: service["command"]
        for name, service in spec["services"].items()
        if service.get("image", "").startswith("aiweb:")
    }
