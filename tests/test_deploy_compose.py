"""Structure of deploy/compose (Docker cannot run here): services, files, secrets, the Dockerfile; the
site's names from deploy/site/site.env, the broker's definitions rendered for any site."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from sortline.broker_definitions import site_definitions, site_template
from tests.deploy_support import DEPLOY, REPO, SITE_DIR, SITE_ENV, interpolate, read_env_file, site_names

COMPOSE_DIR = DEPLOY / "compose"
SITE = site_names()
#: compose.yaml as compose reads it: ${...} filled from its .env, which is deploy/site/site.env.
COMPOSE = interpolate(yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text()), SITE)
SERVICES = COMPOSE["services"]
CAMERAS = ("camera-agent", "camera-usb", "camera-rtsp")
TEMPLATE = COMPOSE_DIR / "rabbitmq" / "definitions.template.json"


def test_compose_reads_the_site_names_from_the_one_place() -> None:
    assert (COMPOSE_DIR / ".env").resolve() == SITE_ENV.resolve()
    assert set(SITE) == {"SITE_ID", "LINE_ID", "CAMERA_ID"}
    env = SERVICES["worker"]["environment"]
    assert env["SORTLINE_LINE_ID"] == SITE["LINE_ID"]
    assert SERVICES["rabbitmq"]["environment"] == {"SITE_ID": SITE["SITE_ID"], "LINE_ID": SITE["LINE_ID"]}


def test_services() -> None:
    assert {"rabbitmq", "worker", *CAMERAS, "prometheus", "grafana"} <= SERVICES.keys()
    assert SERVICES["rabbitmq"]["image"].startswith("rabbitmq:4-management")
    assert SERVICES["worker"]["deploy"]["replicas"] >= 2
    assert "container_name" not in SERVICES["worker"], "a fixed name breaks --scale"
    assert "ports" not in SERVICES["worker"], "published ports collide between replicas"


def _bind_sources(service: dict) -> list[Path]:
    sources = []
    for volume in service.get("volumes", []):
        source = volume.split(":", 1)[0]
        if source.startswith("."):
            sources.append((COMPOSE_DIR / source).resolve())
    return sources


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_bind_mounted_files_exist(name: str) -> None:
    for source in _bind_sources(SERVICES[name]):
        assert source.exists(), f"{name} mounts {source}, which does not exist"


#: Dockerfile stage -> (pip extra, the one command the image can run, does it serve health).
STAGES = {
    "camera-agent": ("camera,items", "camera-agent", True),
    "worker": ("worker", "classifier-worker", True),
    "worker-gpu": ("gpu", "classifier-worker", True),
    "trainer": ("trainer", "trainer", False),
    "ejector-bridge": ("ejector", "ejector-bridge", True),
}


def _stage(dockerfile: str, stage: str) -> str:
    body = re.split(rf"^FROM\s+\S+\s+AS\s+{stage}\s*$", dockerfile, flags=re.MULTILINE)[1]
    return re.split(r"^FROM\s", body, flags=re.MULTILINE)[0]


def test_builds_use_the_dockerfile_targets() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile, re.MULTILINE | re.IGNORECASE))
    assert set(STAGES) <= stages
    assert "python:3.11-slim" in dockerfile
    for name in ("worker", "camera-agent", "trainer"):
        build = SERVICES[name]["build"]
        assert (COMPOSE_DIR / build["context"] / build["dockerfile"]).resolve() == REPO / "Dockerfile"
        assert build["target"] in stages


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_each_image_installs_the_pinned_extra_and_keeps_only_its_command(stage: str) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    body = _stage(dockerfile, stage)
    extra, command, serves_health = STAGES[stage]
    assert "COPY pyproject.toml README.md constraints.txt ./" in _stage(dockerfile, "base")
    assert f'pip install -c constraints.txt ".[{extra}]"' in body, "installs must follow constraints.txt"
    assert re.search(r"^USER\s+10001", body, re.MULTILINE)
    assert re.search(rf'^CMD \["{command}"\]$', body, re.MULTILINE)
    # pyproject installs every console script; each image removes those it cannot run.
    scripts = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"])
    removed = set(re.search(r"cd /usr/local/bin && rm -f ([^\n]+)", body).group(1).split())
    assert scripts - removed == {command}
    healthcheck = re.search(r"^HEALTHCHECK .*\n\s+CMD (.+)$", body, re.MULTILINE)
    if serves_health:
        assert (
            healthcheck.group(1)
            == 'python -m sortline.health "http://127.0.0.1:${SORTLINE_METRICS_PORT}/readyz"'
        )
    else:
        assert healthcheck is None


def test_no_image_falls_back_to_guest_or_a_model_it_lacks() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'SORTLINE_AMQP_URL=""' in _stage(dockerfile, "base")  # no URL given: exit 2
    for stage in ("worker", "worker-gpu"):  # the model mount of compose and Kubernetes
        assert "SORTLINE_MODEL=/models/default" in _stage(dockerfile, stage)
    assert any(v.endswith(":/models:ro") for v in SERVICES["worker"]["volumes"])


def test_camera_replays_the_demo_in_a_loop() -> None:
    command = SERVICES["camera-agent"]["command"]
    assert command[0] == "camera-agent"
    assert command[command.index("--source") + 1] == "/samples/demo"
    assert "--loop" in command
    assert any(v.split(":")[1] == "/samples/demo" for v in SERVICES["camera-agent"]["volumes"])


def test_secrets_are_declared_generated_and_ignored() -> None:
    declared = COMPOSE["secrets"]
    for name, service in SERVICES.items():
        for secret in service.get("secrets", []):
            assert secret in declared, f"{name} uses undeclared secret {secret}"
    for name, spec in declared.items():
        assert spec["file"] == f"./secrets/{name}"
    assert "*" in (COMPOSE_DIR / "secrets" / ".gitignore").read_text().split()
    # No credentials in the compose file itself.
    text = (COMPOSE_DIR / "compose.yaml").read_text()
    assert "guest" not in text
    assert not re.search(r"amqps?://[^@\s]+:[^@\s]+@", text)


def test_clients_take_the_broker_url_from_a_secret_file() -> None:
    for name in ("worker", *CAMERAS):
        env = SERVICES[name]["environment"]
        url_file = env["SORTLINE_AMQP_URL_FILE"]
        assert url_file.startswith("/run/secrets/")
        assert Path(url_file).name in SERVICES[name]["secrets"]
        assert "SORTLINE_AMQP_URL" not in env and "AMQP_URL" not in env


def test_definitions_are_the_generated_ones_with_a_user_per_role_and_no_guest() -> None:
    """The template is what sortline.broker_definitions renders, so rights and topology cannot drift
    from the code (the rights themselves are tried on the broker in test_broker_roles.py); the site's
    names are tokens (filled in test_make_secrets_then_render_definitions_for_any_site)."""
    definitions = json.loads(TEMPLATE.read_text())
    assert definitions == site_template(), (
        "regenerate: python -m sortline.broker_definitions --template > " + str(TEMPLATE)
    )
    users = {user["name"]: user for user in definitions["users"]}
    assert "guest" not in users
    # Every password is a token the renderer fills from a secret the broker container mounts.
    mounted = set(SERVICES["rabbitmq"]["secrets"])
    for user in users.values():
        assert "password_hash" not in user
        match = re.fullmatch(r"@@secret:(\w+)@@", user["password"])
        assert match, f"{user['name']}: password must come from a secret"
        assert match.group(1) in mounted


#: Each service's broker URL secret, which make-secrets.sh writes with the user of its role (checked there).
SERVICE_URLS = {
    "worker": "worker_amqp_url",
    **dict.fromkeys(CAMERAS, "camera_amqp_url"),
    "trainer": "trainer_amqp_url",
}


def test_services_connect_as_their_own_role_and_only_check_the_topology() -> None:
    for name, secret in SERVICE_URLS.items():
        service = SERVICES[name]
        assert service["environment"]["SORTLINE_AMQP_URL_FILE"] == f"/run/secrets/{secret}"
        assert service["secrets"] == [secret]
        command = service.get("command", [])
        flag = command[command.index("--topology") + 1] if "--topology" in command else None
        assert "check" in (flag, service["environment"].get("SORTLINE_TOPOLOGY")), name


def test_healthchecks_ask_readiness_on_the_metrics_port() -> None:
    for name in ("worker", *CAMERAS):
        command = SERVICES[name]["command"]
        port = command[command.index("--metrics-port") + 1]
        test = SERVICES[name]["healthcheck"]["test"]
        assert test == ["CMD", "python", "-m", "sortline.health", f"http://127.0.0.1:{port}/readyz"], name


def test_rabbitmq_loads_the_rendered_definitions_and_prometheus_plugin() -> None:
    conf = (COMPOSE_DIR / "rabbitmq" / "rabbitmq.conf").read_text()
    assert "definitions.local.path = /tmp/sortline/definitions.json" in conf
    assert "rabbitmq_prometheus" in (COMPOSE_DIR / "rabbitmq" / "enabled_plugins").read_text()
    assert "/tmp" in SERVICES["rabbitmq"]["tmpfs"]


def _run(script: Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(script)],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _deploy_copy(tmp_path: Path, site: dict[str, str]) -> Path:
    """deploy/compose and deploy/site, side by side as in the repository, for ``site``'s names."""
    shutil.copytree(
        COMPOSE_DIR, tmp_path / "compose", ignore=shutil.ignore_patterns("secrets"), symlinks=True
    )
    shutil.copytree(SITE_DIR, tmp_path / "site")
    lines = [line for line in SITE_ENV.read_text().splitlines() if line.startswith("#")]
    (tmp_path / "site" / "site.env").write_text("\n".join([*lines, *(f"{k}={v}" for k, v in site.items())]))
    return tmp_path / "compose"


@pytest.mark.parametrize(
    "site",
    [site_names(), {"SITE_ID": "plant-7", "LINE_ID": "belt_3", "CAMERA_ID": "cam-9"}],
    ids=["shipped", "other"],
)
def test_make_secrets_then_render_definitions_for_any_site(tmp_path: Path, site: dict[str, str]) -> None:
    compose_copy = _deploy_copy(tmp_path, site)
    assert read_env_file(compose_copy / ".env") == site  # compose reads the site's file, not a copy
    made = _run(compose_copy / "make-secrets.sh", {}, tmp_path)
    assert made.returncode == 0, made.stderr
    secrets = compose_copy / "secrets"
    assert {p.name for p in secrets.iterdir()} == set(COMPOSE["secrets"])
    first = (secrets / "rabbitmq_worker_password").read_text()
    assert _run(compose_copy / "make-secrets.sh", {}, tmp_path).returncode == 0
    assert (secrets / "rabbitmq_worker_password").read_text() == first, "must not rotate"
    name, line = site["SITE_ID"], site["LINE_ID"]
    for role, user in (("worker", f"{name}-{line}-worker"), ("camera", f"{name}-{line}-camera"),
                       ("trainer", f"{name}-trainer")):  # fmt: skip
        password = (secrets / f"rabbitmq_{role}_password").read_text()
        assert (secrets / f"{role}_amqp_url").read_text() == f"amqp://{user}:{password}@rabbitmq:5672/{name}"

    out = tmp_path / "rendered"
    env = {
        "SORTLINE_DEFINITIONS_TEMPLATE": str(TEMPLATE),
        "SORTLINE_SECRETS_DIR": str(secrets),
        "SORTLINE_DEFINITIONS_DIR": str(out),
        "SITE_ID": name,  # as compose passes them to the broker
        "LINE_ID": line,
    }
    rendered = _run(COMPOSE_DIR / "rabbitmq" / "render-definitions.sh", env, tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    definitions = json.loads((out / "definitions.json").read_text())
    passwords = {u["name"]: u.pop("password") for u in definitions["users"]}
    expected = site_definitions(name, [line])
    for user in expected["users"]:
        user.pop("password")
    assert definitions == expected, "the template filled for a site is that site's definitions"
    assert passwords[f"{name}-{line}-worker"] == first
    assert "@@" not in (out / "definitions.json").read_text()

    (secrets / "rabbitmq_admin_password").write_text("short")
    refused = _run(COMPOSE_DIR / "rabbitmq" / "render-definitions.sh", env, tmp_path)
    assert refused.returncode != 0 and "rabbitmq_admin_password" in refused.stderr


def test_names_that_cannot_be_in_a_permission_pattern_are_refused(tmp_path: Path) -> None:
    compose_copy = _deploy_copy(tmp_path, {"SITE_ID": "site.a", "LINE_ID": "line-1", "CAMERA_ID": "cam-1"})
    made = _run(compose_copy / "make-secrets.sh", {}, tmp_path)
    assert made.returncode != 0 and "'site.a'" in made.stderr
    env = {"SORTLINE_DEFINITIONS_TEMPLATE": str(TEMPLATE), "SORTLINE_DEFINITIONS_DIR": str(tmp_path / "out"),
           "SITE_ID": "site-a", "LINE_ID": "line.*"}  # fmt: skip
    rendered = _run(COMPOSE_DIR / "rabbitmq" / "render-definitions.sh", env, tmp_path)
    assert rendered.returncode != 0 and "'line.*'" in rendered.stderr


def test_real_camera_examples_read_a_usb_device_or_an_rtsp_stream_kept_secret() -> None:
    usb, rtsp = SERVICES["camera-usb"], SERVICES["camera-rtsp"]
    assert usb["profiles"] == ["usb-camera"] and rtsp["profiles"] == ["rtsp-camera"]
    assert usb["devices"] == ["/dev/video0:/dev/video0"] and usb["group_add"] == ["video"]
    assert usb["command"][usb["command"].index("--source") + 1] == "0"
    assert "--source" not in rtsp["command"]  # SORTLINE_SOURCE, from a git-ignored file
    (env_file,) = rtsp["env_file"]
    assert env_file["path"].startswith("./secrets/")
    for camera in (usb, rtsp):
        assert camera["command"][camera["command"].index("--camera-id") + 1] == SITE["CAMERA_ID"]
        assert camera["build"]["target"] == "camera-agent"
    replay = SERVICES["camera-agent"]["command"]
    assert replay[replay.index("--camera-id") + 1] != SITE["CAMERA_ID"], "two agents as one camera"
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "sortline-camera-agent"]
    assert set(job["dns_sd_configs"][0]["names"]) == set(CAMERAS)


def test_prometheus_and_grafana_mount_the_deploy_config() -> None:
    prometheus_mounts = SERVICES["prometheus"]["volumes"]
    assert "../prometheus:/etc/prometheus:ro" in prometheus_mounts
    # The site label of every series: the site's name, from the environment compose gives Prometheus.
    assert "--enable-feature=expand-external-labels" in SERVICES["prometheus"]["command"]
    assert SERVICES["prometheus"]["environment"] == {"SITE_ID": SITE["SITE_ID"]}
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["global"]["external_labels"]["site"] == "${SITE_ID}"
    grafana_mounts = SERVICES["grafana"]["volumes"]
    assert "../grafana/provisioning:/etc/grafana/provisioning:ro" in grafana_mounts
    assert "../grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana_mounts
    assert SERVICES["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"].startswith("/run/secrets/")
