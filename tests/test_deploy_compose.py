"""Structure of deploy/compose (Docker cannot run here): services, files, secrets, the Dockerfile."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy_support import DEPLOY, REPO

COMPOSE_DIR = DEPLOY / "compose"
COMPOSE = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
TEMPLATE = COMPOSE_DIR / "rabbitmq" / "definitions.template.json"


def test_services() -> None:
    assert {"rabbitmq", "worker", "camera-agent", "prometheus", "grafana"} <= SERVICES.keys()
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


def test_builds_use_the_dockerfile_targets() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile, re.MULTILINE | re.IGNORECASE))
    assert {"camera-agent", "worker"} <= stages
    assert "python:3.11-slim" in dockerfile
    for name in ("worker", "camera-agent"):
        build = SERVICES[name]["build"]
        assert (COMPOSE_DIR / build["context"] / build["dockerfile"]).resolve() == REPO / "Dockerfile"
        assert build["target"] in stages
    # Each runtime stage ends as the non-root user and installs its own extra.
    for stage, extra in (("camera-agent", "camera"), ("worker", "worker")):
        body = re.split(rf"^FROM\s+\S+\s+AS\s+{stage}\s*$", dockerfile, flags=re.MULTILINE)[1]
        body = re.split(r"^FROM\s", body, flags=re.MULTILINE)[0]
        assert f'pip install ".[{extra}]"' in body
        assert re.search(r"^USER\s+10001", body, re.MULTILINE), stage


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
    for name in ("worker", "camera-agent"):
        env = SERVICES[name]["environment"]
        url_file = env["SORTLINE_AMQP_URL_FILE"]
        assert url_file.startswith("/run/secrets/")
        assert Path(url_file).name in SERVICES[name]["secrets"]
        assert "SORTLINE_AMQP_URL" not in env and "AMQP_URL" not in env


def test_definitions_have_a_vhost_and_users_per_site_and_no_guest() -> None:
    definitions = json.loads(TEMPLATE.read_text())
    users = {user["name"]: user for user in definitions["users"]}
    assert "guest" not in users
    vhosts = {vhost["name"] for vhost in definitions["vhosts"]}
    assert vhosts and "/" not in vhosts
    for vhost in vhosts:
        for role in ("camera", "worker"):
            assert f"{vhost}-{role}" in users, f"no {role} user for site {vhost}"
    for permission in definitions["permissions"]:
        assert permission["user"] in users and permission["vhost"] in vhosts
    # Every password is a token the renderer fills from a secret the broker container mounts.
    mounted = set(SERVICES["rabbitmq"]["secrets"])
    for user in users.values():
        assert "password_hash" not in user
        match = re.fullmatch(r"@@secret:(\w+)@@", user["password"])
        assert match, f"{user['name']}: password must come from a secret"
        assert match.group(1) in mounted


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


def test_make_secrets_then_render_definitions(tmp_path: Path) -> None:
    compose_copy = tmp_path / "compose"
    shutil.copytree(COMPOSE_DIR, compose_copy, ignore=shutil.ignore_patterns("secrets"))
    made = _run(compose_copy / "make-secrets.sh", {}, tmp_path)
    assert made.returncode == 0, made.stderr
    secrets = compose_copy / "secrets"
    assert {p.name for p in secrets.iterdir()} == set(COMPOSE["secrets"])
    first = (secrets / "rabbitmq_site_a_worker_password").read_text()
    assert _run(compose_copy / "make-secrets.sh", {}, tmp_path).returncode == 0
    assert (secrets / "rabbitmq_site_a_worker_password").read_text() == first, "must not rotate on re-run"
    assert f":{first}@rabbitmq:5672/site-a" in (secrets / "site_a_worker_amqp_url").read_text()

    out = tmp_path / "rendered"
    env = {
        "SORTLINE_DEFINITIONS_TEMPLATE": str(TEMPLATE),
        "SORTLINE_SECRETS_DIR": str(secrets),
        "SORTLINE_DEFINITIONS_DIR": str(out),
    }
    rendered = _run(COMPOSE_DIR / "rabbitmq" / "render-definitions.sh", env, tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    users = {u["name"]: u for u in json.loads((out / "definitions.json").read_text())["users"]}
    assert users["site-a-worker"]["password"] == first
    assert "@@" not in (out / "definitions.json").read_text()

    (secrets / "rabbitmq_admin_password").write_text("short")
    refused = _run(COMPOSE_DIR / "rabbitmq" / "render-definitions.sh", env, tmp_path)
    assert refused.returncode != 0 and "rabbitmq_admin_password" in refused.stderr


def test_entrypoint_loads_the_url_file(tmp_path: Path) -> None:
    url_file = tmp_path / "url"
    url_file.write_text("amqp://u:p@broker:5672/site-a")
    result = subprocess.run(
        ["sh", str(DEPLOY / "docker" / "entrypoint.sh"), "sh", "-c", 'printf %s "$SORTLINE_AMQP_URL"'],
        env={"PATH": "/usr/bin:/bin", "SORTLINE_AMQP_URL_FILE": str(url_file)},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "amqp://u:p@broker:5672/site-a"


def test_prometheus_and_grafana_mount_the_deploy_config() -> None:
    prometheus_mounts = SERVICES["prometheus"]["volumes"]
    assert "../prometheus:/etc/prometheus:ro" in prometheus_mounts
    grafana_mounts = SERVICES["grafana"]["volumes"]
    assert "../grafana/provisioning:/etc/grafana/provisioning:ro" in grafana_mounts
    assert "../grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana_mounts
    assert SERVICES["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"].startswith("/run/secrets/")
