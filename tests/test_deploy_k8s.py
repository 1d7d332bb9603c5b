"""deploy/k8s as shipped: every document parses and cross-references what exists, every container runs
valid flags of its command, and the operator-facing properties hold (least privilege, probes on
/healthz and /readyz, the site CA mounted, KEDA counting waiting frames only, GPU rollouts that can
move, one scrape per pod, disruption budget, anti-affinity, network policies, no token, a video
device for the USB camera). With kubectl present, kustomize builds each overlay and the built
output is checked too (no cluster is needed), also for another site's names in deploy/site/site.env.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from pydantic_settings import BaseSettings

from camera_agent.settings import AgentSettings
from classifier_worker.settings import WorkerSettings
from tests.deploy_support import DEPLOY, SITE_DIR, SITE_ENV, site_names
from trainer.settings import COMMANDS as TRAINER_COMMANDS

K8S = DEPLOY / "k8s"
REQUIRED = {
    "Deployment": ("spec.selector.matchLabels", "spec.template.spec.containers"),
    "Job": ("spec.template.spec.containers",),
    "Service": ("spec.selector", "spec.ports"),
    "ServiceAccount": (),
    "PodDisruptionBudget": ("spec.selector.matchLabels",),
    "NetworkPolicy": ("spec.policyTypes",),
    "ScaledObject": ("spec.scaleTargetRef.name", "spec.triggers"),
    "TriggerAuthentication": ("spec.secretTargetRef",),
    "Namespace": (),
    "Secret": ("type",),
    "Kustomization": (),
}
PART_OF = {"app.kubernetes.io/part-of": "sortline"}


def _documents() -> list[tuple[Path, dict]]:
    """Every resource and kustomization; JSON patches (lists of operations) are checked on their own."""
    return [
        (path, doc)
        for path in sorted(K8S.rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict)
    ]


DOCS = _documents()
BASE = [doc for path, doc in DOCS if path.parent.name == "base"]
SECRETS_EXAMPLE = {d["metadata"]["name"] for p, d in DOCS if p.name == "secrets.example.yaml"}


def _one(kind: str, name: str | None = None, docs: list[dict] = BASE) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return doc


def _get(doc: dict, dotted: str):
    for key in dotted.split("."):
        doc = doc[key]
    return doc


def _is_patch(path: Path) -> bool:
    return "overlays" in path.parts


@pytest.mark.parametrize(
    ("path", "doc"), DOCS, ids=[f"{p.relative_to(K8S)}:{d.get('kind')}" for p, d in DOCS]
)
def test_document_has_required_fields(path: Path, doc: dict) -> None:
    assert doc.get("apiVersion") and doc.get("kind") in REQUIRED, path
    if doc["kind"] != "Kustomization":
        assert doc["metadata"]["name"]
    if _is_patch(path) and doc["kind"] != "Kustomization":
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
            assert any(d["kind"] == target["kind"] and d["metadata"]["name"] == target["name"] for d in BASE)
    listed = set(yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in (K8S / "base").glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


# --- containers run valid commands -------------------------------------------------------------------


def _settings_for(args: list[str]) -> type[BaseSettings]:
    program = args[0]
    if program == "trainer":
        return TRAINER_COMMANDS[args[1]]
    return {"camera-agent": AgentSettings, "classifier-worker": WorkerSettings}[program]


def _pods() -> list[tuple[str, dict]]:
    """(name, pod spec) of every Deployment and Job shipped (base and jobs)."""
    return [
        (doc["metadata"]["name"], doc["spec"]["template"])
        for path, doc in DOCS
        if doc["kind"] in ("Deployment", "Job") and not _is_patch(path)
    ]


PODS = _pods()


@pytest.mark.parametrize(("name", "pod"), PODS, ids=[n for n, _ in PODS])
def test_container_args_and_environment_are_settings_of_the_command(name: str, pod: dict) -> None:
    (container,) = pod["spec"]["containers"]
    args = container["args"]
    settings = _settings_for(args)
    fields = {field: info for field, info in settings.model_fields.items()}
    flags = {"--" + field.replace("_", "-"): info for field, info in fields.items()}
    for index, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        assert arg in flags, f"{name}: {arg} is not a flag of {args[0]}"
        if flags[arg].annotation is not bool:
            assert index + 1 < len(args) and not args[index + 1].startswith("--"), f"{arg} without value"
    for variable in container.get("env", []):
        field = variable["name"].removeprefix("SORTLINE_").lower()
        assert variable["name"].startswith("SORTLINE_") and field in fields, f"{name}: {variable['name']}"


@pytest.mark.parametrize(("name", "pod"), PODS, ids=[n for n, _ in PODS])
def test_pods_run_unprivileged_without_a_token_and_as_part_of_sortline(name: str, pod: dict) -> None:
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == "sortline"
    assert spec["securityContext"]["runAsNonRoot"] is True
    (container,) = spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    if name.startswith("sortline-trainer"):  # not labelled by the kustomization: they carry it
        assert pod["metadata"]["labels"].items() >= PART_OF.items()


@pytest.mark.parametrize(("name", "pod"), PODS, ids=[n for n, _ in PODS])
def test_broker_users_come_from_their_own_secret_file_with_the_site_ca(name: str, pod: dict) -> None:
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e for e in container.get("env", [])}
    if container["args"][:2] == ["trainer", "train"]:
        assert "SORTLINE_AMQP_URL_FILE" not in env  # training never talks to the broker
        return
    assert "SORTLINE_AMQP_URL" not in env, "the URL is a file, not a variable"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    for variable in ("SORTLINE_AMQP_URL_FILE", "SORTLINE_TLS_CA_FILE"):
        path = Path(env[variable]["value"])
        secret = volumes[mounts[str(path.parent)]]["secret"]
        assert path.name in {item["path"] for item in secret["items"]}
        assert secret["secretName"] in SECRETS_EXAMPLE, f"{secret['secretName']} not in secrets.example.yaml"
    # The line's part is LINE_ID, filled from deploy/site/site.env (test_site_names_come_from_site_env).
    role = {
        "classifier-worker": "sortline.LINE_ID.worker-amqp",
        "camera-agent": "sortline.LINE_ID.camera-amqp",
        "trainer": "sortline-trainer-amqp",
    }
    url_secret = volumes[mounts["/etc/sortline/amqp"]]["secret"]["secretName"]
    assert url_secret == role[container["args"][0]]
    assert container["args"][container["args"].index("--topology") + 1] == "check"


def test_every_secret_a_pod_names_is_in_the_example() -> None:
    for name, pod in PODS:
        (container,) = pod["spec"]["containers"]
        named = {v["secret"]["secretName"] for v in pod["spec"]["volumes"] if "secret" in v}
        named |= {
            e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", []) if "valueFrom" in e
        }
        assert named <= SECRETS_EXAMPLE, f"{name}: {named - SECRETS_EXAMPLE}"


def test_no_secret_values_in_git() -> None:
    for path, doc in DOCS:
        if doc["kind"] == "Secret":
            assert not doc.get("data") and not doc.get("stringData"), path


# --- the worker -----------------------------------------------------------------------------------------


def _container(name: str) -> dict:
    (container,) = _one("Deployment", name)["spec"]["template"]["spec"]["containers"]
    return container


def test_probes_ask_health_and_readiness_not_metrics() -> None:
    for name in ("sortline-worker", "sortline-camera"):
        container = _container(name)
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container.get("startupProbe", {}).get("httpGet", {}).get("path", "/healthz") == "/healthz"
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["port"] == "metrics"


def test_worker_deployment() -> None:
    deployment = _one("Deployment", "sortline-worker")
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
    assert pod["spec"]["terminationGracePeriodSeconds"] >= 10
    assert container["resources"]["requests"]["cpu"] == container["resources"]["limits"]["cpu"]
    port = container["args"][container["args"].index("--metrics-port") + 1]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == port == "9102"
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    (term,) = pod["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert (
        term["podAffinityTerm"]["labelSelector"]["matchLabels"]
        == deployment["spec"]["selector"]["matchLabels"]
    )
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"


def test_workers_are_scraped_once_through_their_pods() -> None:
    service = _one("Service")
    pod_labels = _one("Deployment", "sortline-worker")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert not any(key.startswith("prometheus.io/") for key in service["metadata"].get("annotations", {}))


def test_disruption_budget_leaves_a_worker_running() -> None:
    budget = _one("PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "sortline-worker"}
    assert budget["spec"]["maxUnavailable"] == 1
    assert _one("ScaledObject")["spec"]["minReplicaCount"] >= 2


def test_keda_counts_waiting_frames_only_and_verifies_the_broker() -> None:
    scaled = _one("ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "sortline-worker"
    (trigger,) = scaled["spec"]["triggers"]
    metadata = trigger["metadata"]
    assert (trigger["type"], metadata["protocol"], metadata["mode"]) == ("rabbitmq", "http", "QueueLength")
    assert metadata["queueName"] == "sortline.frames.LINE_ID"
    # Busy workers hold --prefetch frames unacked each: counting them scales any line to the maximum.
    assert metadata["excludeUnacknowledged"] == "true"
    assert "host" not in metadata and "unsafeSsl" not in metadata
    auth = _one("TriggerAuthentication")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    params = {ref["parameter"]: ref for ref in auth["spec"]["secretTargetRef"]}
    assert set(params) == {"host", "tls", "ca"}
    assert {ref["name"] for ref in params.values()} <= SECRETS_EXAMPLE


def test_network_policies_deny_by_default_and_allow_metrics_and_broker() -> None:
    policies = {d["metadata"]["name"]: d["spec"] for d in BASE if d["kind"] == "NetworkPolicy"}
    deny = policies["sortline-default-deny"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    (metrics,) = policies["sortline-metrics-from-prometheus"]["ingress"]
    assert metrics["ports"] == [{"protocol": "TCP", "port": "metrics"}]
    egress_ports = {
        port["port"]
        for rule in policies["sortline-egress-broker-and-dns"]["egress"]
        for port in rule["ports"]
    }
    assert egress_ports == {53, 5671}
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    (labels,) = kustomization["labels"]
    assert labels["pairs"] == PART_OF and labels["includeTemplates"] is True  # the policies' selector


def test_camera_example_reads_its_stream_from_a_secret_and_usb_needs_a_device() -> None:
    env = {e["name"]: e for e in _container("sortline-camera")["env"]}
    assert env["SORTLINE_SOURCE"]["valueFrom"]["secretKeyRef"]["name"] in SECRETS_EXAMPLE
    patch = yaml.safe_load((K8S / "overlays" / "usb-camera" / "camera-usb-patch.yaml").read_text())
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    assert {e["name"]: e.get("value") for e in container["env"]} == {"SORTLINE_SOURCE": "0"}
    assert container["resources"]["limits"]["squat.ai/video"] == 1
    (trigger,) = _one("ScaledObject", docs=_build("overlays/gpu"))["spec"]["triggers"]
    assert trigger["metadata"]["value"] == "100" and trigger["metadata"]["excludeUnacknowledged"] == "true"
    assert trigger["metadata"]["queueName"] == f"sortline.frames.{site_names()['LINE_ID']}"
    assert container["resources"]["requests"]["squat.ai/video"] == 1
    assert 44 in patch["spec"]["template"]["spec"]["securityContext"]["supplementalGroups"]


def test_gpu_overlay_requests_one_gpu_and_rolls_without_a_spare_one() -> None:
    patch = yaml.safe_load((K8S / "overlays" / "gpu" / "worker-gpu-patch.yaml").read_text())
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    # A surge pod would wait for a GPU only the pod it replaces can free.
    assert patch["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    operations = yaml.safe_load((K8S / "overlays" / "gpu" / "scaledobject-gpu-patch.yaml").read_text())
    changed = {op["path"]: op["value"] for op in operations if op["op"] == "replace"}
    assert changed["/spec/minReplicaCount"] >= 2  # one keeps sorting while the other is replaced
    assert set(changed) <= {
        "/spec/minReplicaCount",
        "/spec/maxReplicaCount",
        "/spec/triggers/0/metadata/value",
    }
    kustomization = yaml.safe_load((K8S / "overlays" / "gpu" / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert (image["name"], image["newName"]) == ("sortline-worker", "sortline-worker-gpu")
    assert "FROM base AS worker-gpu" in (K8S.parent.parent / "Dockerfile").read_text()


def test_trainer_jobs_train_then_promote_on_the_models_volume() -> None:
    jobs = {name: pod for name, pod in PODS if name.startswith("sortline-trainer")}
    train = jobs["sortline-trainer-train"]["spec"]["containers"][0]["args"]
    promote = jobs["sortline-trainer-promote"]["spec"]["containers"][0]["args"]
    assert train[:2] == ["trainer", "train"] and promote[:2] == ["trainer", "promote"]
    assert train[train.index("--out") + 1] == promote[promote.index("--model") + 1]
    assert promote[promote.index("--to") + 1] == "/models/default"  # what the workers serve
    for pod in jobs.values():
        assert pod["spec"]["restartPolicy"] == "Never"
        claims = {
            v["persistentVolumeClaim"]["claimName"]
            for v in pod["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        }
        assert "sortline-models" in claims


# --- what kustomize builds ------------------------------------------------------------------------------


def _build(folder: str, k8s: Path = K8S) -> list[dict]:
    result = subprocess.run(
        ["kubectl", "kustomize", str(k8s / folder)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return list(yaml.safe_load_all(result.stdout))


needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")


@needs_kubectl
@pytest.mark.parametrize("folder", ["base", "overlays/gpu", "overlays/usb-camera"])
def test_kustomize_builds_and_labels_every_pod(folder: str) -> None:
    built = _build(folder)
    kinds = {doc["kind"] for doc in built}
    assert {"Deployment", "Service", "ScaledObject", "TriggerAuthentication", "NetworkPolicy",
            "PodDisruptionBudget", "ServiceAccount"} <= kinds  # fmt: skip
    assert "Secret" not in kinds
    namespace = f"sortline-{site_names()['SITE_ID']}"
    for doc in built:
        assert doc["metadata"].get("namespace", namespace) == namespace
        assert doc["kind"] != "ConfigMap", "the site's names are read at build time, never applied"
        if doc["kind"] == "Deployment":
            assert doc["spec"]["template"]["metadata"]["labels"].items() >= PART_OF.items()


@needs_kubectl
def test_overlays_change_what_they_say() -> None:
    gpu = _one("Deployment", "sortline-worker", _build("overlays/gpu"))
    assert gpu["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert gpu["spec"]["template"]["spec"]["containers"][0]["image"] == "sortline-worker-gpu"
    usb = _one("Deployment", "sortline-camera", _build("overlays/usb-camera"))
    (container,) = usb["spec"]["template"]["spec"]["containers"]
    source = next(e for e in container["env"] if e["name"] == "SORTLINE_SOURCE")
    assert source == {"name": "SORTLINE_SOURCE", "value": "0"}
    assert container["resources"]["limits"]["squat.ai/video"] == 1
    (trigger,) = _one("ScaledObject", docs=_build("overlays/gpu"))["spec"]["triggers"]
    assert trigger["metadata"]["value"] == "100" and trigger["metadata"]["excludeUnacknowledged"] == "true"
    assert trigger["metadata"]["queueName"] == f"sortline.frames.{site_names()['LINE_ID']}"


def test_docs_name_every_secret_of_the_example() -> None:
    text = (K8S.parent.parent / "docs" / "operations.md").read_text()
    missing = {name for name in SECRETS_EXAMPLE if not re.search(rf"\b{re.escape(name)}\b", text)}
    assert not missing, f"docs/operations.md does not explain {missing}"


#: Placeholders in deploy/k8s that the site component fills; none may survive a build.
PLACEHOLDER = re.compile(r"(?<![A-Z_])(SITE_ID|LINE_ID|CAMERA_ID)(?![A-Z_])")


def _built_values(docs: list[dict]) -> list[str]:
    def walk(value: object) -> list[str]:
        if isinstance(value, dict):
            return [text for item in value.values() for text in walk(item)]
        if isinstance(value, list):
            return [text for item in value for text in walk(item)]
        return [str(value)]

    return walk(docs)


def _site_copy(tmp_path: Path, site: dict[str, str]) -> Path:
    shutil.copytree(K8S, tmp_path / "k8s")
    shutil.copytree(SITE_DIR, tmp_path / "site")
    (tmp_path / "site" / "site.env").write_text("".join(f"{k}={v}\n" for k, v in site.items()))
    return tmp_path / "k8s"


@needs_kubectl
@pytest.mark.parametrize("folder", ["base", "overlays/gpu", "overlays/usb-camera"])
def test_site_names_come_from_site_env(folder: str, tmp_path: Path) -> None:
    """The shipped names and another site's: each lands in every field that names the site, line or camera."""
    assert "site.env" in (SITE_DIR / "kustomization.yaml").read_text() and SITE_ENV.exists()
    for site in (site_names(), {"SITE_ID": "plant-7", "LINE_ID": "belt-3", "CAMERA_ID": "cam-9"}):
        built = _build(folder, _site_copy(tmp_path / site["SITE_ID"], site))
        name, line, camera = site["SITE_ID"], site["LINE_ID"], site["CAMERA_ID"]
        assert not [v for v in _built_values(built) if PLACEHOLDER.search(v)]
        assert _one("Namespace", docs=built)["metadata"]["name"] == f"sortline-{name}"
        assert {d["metadata"]["namespace"] for d in built if d["kind"] != "Namespace"} == {f"sortline-{name}"}
        worker = _one("Deployment", "sortline-worker", built)["spec"]["template"]
        (container,) = worker["spec"]["containers"]
        assert {"name": "SORTLINE_LINE_ID", "value": line} in container["env"]
        assert worker["metadata"]["labels"]["sortline/line"] == line
        secrets = {v["secret"]["secretName"] for v in worker["spec"]["volumes"] if "secret" in v}
        assert f"sortline.{line}.worker-amqp" in secrets
        (trigger,) = _one("ScaledObject", docs=built)["spec"]["triggers"]
        assert trigger["metadata"]["queueName"] == f"sortline.frames.{line}"
        camera_pod = _one("Deployment", "sortline-camera", built)
        assert camera_pod["spec"]["selector"]["matchLabels"]["sortline/camera"] == f"{line}.{camera}"
        (agent,) = camera_pod["spec"]["template"]["spec"]["containers"]
        assert {"name": "SORTLINE_CAMERA_ID", "value": camera} in agent["env"]
        named = {
            v["secret"]["secretName"]
            for v in camera_pod["spec"]["template"]["spec"]["volumes"]
            if "secret" in v
        }
        assert f"sortline.{line}.camera-amqp" in named
        if folder != "overlays/usb-camera":  # which reads the USB camera instead of the stream
            source = next(e for e in agent["env"] if e["name"] == "SORTLINE_SOURCE")
            assert source["valueFrom"]["secretKeyRef"]["name"] == f"sortline.{line}.{camera}.source"
