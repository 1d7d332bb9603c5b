"""deploy/systemd: units for an edge box without containers. Each runs a command of the wheel with valid
flags, the line from the site's names, the broker URL as a credential file only it reads, no restart
loop on a setting to fix; systemd itself accepts them (systemd-analyze verify, where installed)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from camera_agent.settings import AgentSettings
from classifier_worker.settings import WorkerSettings
from ejector_bridge.settings import BridgeSettings
from tests.deploy_support import DEPLOY, REPO, site_names

UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
SETTINGS: dict[str, type[BaseSettings]] = {
    "camera-agent": AgentSettings,
    "classifier-worker": WorkerSettings,
    "ejector-bridge": BridgeSettings,
}
INSTALL = "/opt/sortline/bin/"


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections of ``key=value`` pairs, in order: systemd allows a key more than once."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in path.read_text().splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        elif line and not line.startswith("#"):
            key, value = line.split("=", 1)
            current.append((key, value))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [value for name, value in section if name == key]


def test_there_is_a_unit_per_service() -> None:
    assert {p.name for p in UNITS} == {
        "sortline-camera-agent@.service", "sortline-worker@.service", "sortline-ejector-bridge.service",
    }  # fmt: skip


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_each_unit_runs_its_command_with_valid_settings(unit: Path) -> None:
    service = parse_unit(unit)["Service"]
    (exec_start,) = values(service, "ExecStart")
    program, *args = shlex.split(exec_start)
    command = program.removeprefix(INSTALL)
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert program.startswith(INSTALL) and command in scripts
    fields = SETTINGS[command].model_fields
    for index, arg in enumerate(args):
        if arg.startswith("--"):
            assert arg[2:].replace("-", "_") in fields, f"{unit.name}: {arg} is not a flag of {command}"
            flag = fields[arg[2:].replace("-", "_")]
            assert flag.annotation is bool or not args[index + 1].startswith("--"), f"{arg} without a value"
    assert args[args.index("--line-id") + 1] == "${LINE_ID}", "the line comes from the site's names"
    assert args[args.index("--topology") + 1] == "check"
    assert set(re.findall(r"\$\{(\w+)\}", exec_start)) <= set(site_names())
    for assignment in values(service, "Environment"):
        name = assignment.split("=", 1)[0]
        assert name.startswith("SORTLINE_") and name.removeprefix("SORTLINE_").lower() in fields, assignment
    port = dict(a.split("=", 1) for a in values(service, "Environment"))["SORTLINE_METRICS_PORT"]
    assert int(port) == fields["metrics_port"].default


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_each_unit_reads_the_site_its_url_as_a_credential_and_never_loops_on_a_bad_setting(
    unit: Path,
) -> None:
    service = parse_unit(unit)["Service"]
    assert values(service, "EnvironmentFile")[0] == "/etc/sortline/site.env"
    (credential,) = values(service, "LoadCredential")
    name, source = credential.split(":", 1)
    assert source.startswith("/etc/sortline/credentials/")
    assert f"SORTLINE_AMQP_URL_FILE=%d/{name}" in values(service, "Environment")
    assert not [
        e for e in values(service, "Environment") if e.startswith(("SORTLINE_AMQP_URL=", "AMQP_URL="))
    ]
    assert values(service, "Restart") == ["on-failure"] and values(service, "RestartPreventExitStatus") == [
        "2"
    ]
    assert values(service, "DynamicUser") == ["yes"] and values(service, "NoNewPrivileges") == ["yes"]
    assert parse_unit(unit)["Install"] == [("WantedBy", "multi-user.target")]


def test_the_camera_may_open_a_video_device_and_each_instance_has_its_own_settings() -> None:
    camera = parse_unit(DEPLOY / "systemd" / "sortline-camera-agent@.service")["Service"]
    assert values(camera, "SupplementaryGroups") == ["video"]
    assert "/etc/sortline/camera-%i.env" in values(camera, "EnvironmentFile")  # SORTLINE_SOURCE lives there
    assert "--camera-id %i" in values(camera, "ExecStart")[0]
    worker = parse_unit(DEPLOY / "systemd" / "sortline-worker@.service")["Service"]
    assert "-/etc/sortline/worker-%i.env" in values(worker, "EnvironmentFile")  # e.g. a second metrics port


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_systemd_accepts_the_unit(unit: Path, tmp_path: Path) -> None:
    """As installed: the commands exist under /opt/sortline/bin (here stand-ins that do nothing)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command in SETTINGS:
        (bin_dir / command).symlink_to(shutil.which("true"))
    (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALL, f"{bin_dir}/"))
    instance = unit.name.replace("@.service", "@cam-1.service")
    verified = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / instance)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr
