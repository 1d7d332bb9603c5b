"""Structure of deploy/k8s: every document parses, has its kind's required fields, and runs valid CLIs."""

from __future__ import annotations

import importlib
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy_support import DEPLOY

K8S = DEPLOY / "k8s"

# The command-line contract of the two processes (README / brief). Common to both: --log-level.
CLI_FLAGS = {
    "camera-agent": {
        "--source",
        "--line-id",
        "--camera-id",
        "--fps",
        "--loop",
        "--amqp-url",
        "--metrics-port",
        "--log-level",
    },
    "classifier-worker": {"--model", "--line-id", "--metrics-port", "--amqp-url", "--log-level"},
}
BOOLEAN_FLAGS = {"--loop"}
SETTINGS_CLASSES = {
    "camera-agent": ("camera_agent.settings", "AgentSettings"),
    "classifier-worker": ("classifier_worker.settings", "WorkerSettings"),
}
REQUIRED = {
    "Deployment": ("spec.selector.matchLabels", "spec.template.spec.containers"),
    "Service": ("spec.selector", "spec.ports"),
    "ScaledObject": ("spec.scaleTargetRef.name", "spec.triggers"),
    "TriggerAuthentication": ("spec.secretTargetRef",),
    "Namespace": (),
    "Secret": ("type",),
    "Kustomization": (),
}


def _documents() -> list[tuple[Path, dict]]:
    docs = []
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path, doc))
    return docs


DOCS = _documents()
# One document per kind in base, except Deployment (worker and camera agent): look those up by name.
BASE = {doc["kind"]: doc for path, doc in DOCS if path.parent.name == "base" and doc["kind"] != "Deployment"}


def _get(doc: dict, dotted: str):
    for key in dotted.split("."):
        doc = doc[key]
    return doc


@pytest.mark.parametrize(
    ("path", "doc"), DOCS, ids=[f"{p.relative_to(K8S)}:{d.get('kind')}" for p, d in DOCS]
)
def test_document_has_required_fields(path: Path, doc: dict) -> None:
    assert doc.get("apiVersion") and doc.get("kind") in REQUIRED, path
    if doc["kind"] != "Kustomization":
        assert doc["metadata"]["name"]
    if path.parent.name == "gpu" and doc["kind"] != "Kustomization":
        return  # strategic-merge patches carry only what they change
    for field in REQUIRED[doc["kind"]]:
        assert _get(doc, field), f"{path.name}: {doc['kind']} without {field}"


def test_kustomizations_list_existing_files() -> None:
    for path, doc in DOCS:
        if doc["kind"] != "Kustomization":
            continue
        for resource in doc.get("resources", []):
            assert (path.parent / resource).exists(), f"{path}: {resource}"
        for patch in doc.get("patches", []):
            assert (path.parent / patch["path"]).is_file()
            target = patch["target"]
            assert any(
                d["kind"] == target["kind"] and d["metadata"]["name"] == target["name"]
                for p, d in DOCS
                if p.parent.name == "base"
            ), f"{path}: patch target {target} not in base"
    listed = set(yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in (K8S / "base").glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def _containers() -> list[tuple[str, dict]]:
    return [
        (doc["metadata"]["name"], container)
        for path, doc in DOCS
        if doc["kind"] == "Deployment" and path.parent.name == "base"
        for container in doc["spec"]["template"]["spec"]["containers"]
    ]


def _flags(args: list[str]) -> list[str]:
    return [arg for arg in args[1:] if arg.startswith("--")]


@pytest.mark.parametrize(("name", "container"), _containers(), ids=[n for n, _ in _containers()])
def test_container_args_are_valid_cli_flags(name: str, container: dict) -> None:
    args = container["args"]
    program = args[0]
    assert program in CLI_FLAGS, f"{name}: unknown program {program}"
    flags = _flags(args)
    assert set(flags) <= CLI_FLAGS[program], set(flags) - CLI_FLAGS[program]
    # Every flag that takes a value has one.
    for index, arg in enumerate(args[1:], start=1):
        if arg.startswith("--") and arg not in BOOLEAN_FLAGS:
            assert index + 1 < len(args) and not args[index + 1].startswith("--"), f"{arg} without value"
    # Where the process' settings model exists, the flags must be its fields too.
    module_name, class_name = SETTINGS_CLASSES[program]
    try:
        settings = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        return
    fields = {"--" + field.replace("_", "-") for field in settings.model_fields}
    assert set(flags) <= fields, set(flags) - fields


def test_compose_commands_are_valid_cli_flags() -> None:
    services = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())["services"]
    for name in ("worker", "camera-agent"):
        command = services[name]["command"]
        assert set(_flags(command)) <= CLI_FLAGS[command[0]], name


def test_worker_deployment() -> None:
    deployment = next(
        d
        for p, d in DOCS
        if d.get("kind") == "Deployment"
        and d["metadata"]["name"] == "sortline-worker"
        and p.parent.name == "base"
    )
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
    assert spec["terminationGracePeriodSeconds"] >= 10
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    port = container["args"][container["args"].index("--metrics-port") + 1]
    assert port == "9102"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in ("metrics", 9102)
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9102"
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["SORTLINE_AMQP_URL"]["valueFrom"], "the broker URL must come from a Secret"


def test_worker_service_selects_the_workers() -> None:
    service = BASE["Service"]
    deployment_labels = next(
        d for p, d in DOCS if d.get("kind") == "Deployment" and d["metadata"]["name"] == "sortline-worker"
    )["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= deployment_labels.items()
    assert service["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


def test_keda_scales_workers_on_the_frames_queue() -> None:
    scaled = BASE["ScaledObject"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "sortline-worker"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == "sortline.frames.line-1"
    assert trigger["metadata"]["mode"] == "QueueLength"
    assert float(trigger["metadata"]["value"]) > 0
    assert "host" not in trigger["metadata"], "credentials belong in the TriggerAuthentication's Secret"
    assert trigger["authenticationRef"]["name"] == BASE["TriggerAuthentication"]["metadata"]["name"]
    assert scaled["spec"]["minReplicaCount"] >= 1


def test_gpu_overlay_requests_one_gpu() -> None:
    patch = yaml.safe_load((K8S / "overlays" / "gpu" / "worker-gpu-patch.yaml").read_text())
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "worker"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    kustomization = yaml.safe_load((K8S / "overlays" / "gpu" / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert (image["name"], image["newName"]) == ("sortline-worker", "sortline-worker-gpu")
    assert "FROM base AS worker-gpu" in (K8S.parent.parent / "Dockerfile").read_text()


def test_no_secret_values_in_git() -> None:
    for path, doc in DOCS:
        if doc["kind"] == "Secret":
            assert not doc.get("data") and not doc.get("stringData"), path


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed (optional check)")
@pytest.mark.parametrize("folder", ["base", "overlays/gpu"])
def test_kustomize_builds(folder: str) -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S / folder)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    kinds = [doc["kind"] for doc in yaml.safe_load_all(result.stdout)]
    assert {"Deployment", "Service", "ScaledObject", "TriggerAuthentication"} <= set(kinds)
