"""What every command shares: ``--version``, ``--log-format json``, and no silent broker fallback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sortline.build_info import package_version
from sortline_dev.processes import WorkerProcess

COMMANDS = {
    "classifier-worker": "classifier_worker.cli",
    "camera-agent": "camera_agent.cli",
    "trainer": "trainer.cli",
    "sortline-demo": "sortline_dev.demo",
    "sortline": "sortline_tools",
    "ejector-bridge": "ejector_bridge.cli",
    "python -m bench": "bench",
}


def run(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", module, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=env)


@pytest.mark.parametrize("prog", sorted(COMMANDS))
def test_every_command_prints_its_version(prog: str) -> None:
    """Even without the flags it requires (camera-agent's --source)."""
    result = run(COMMANDS[prog], "--version", env={**os.environ, "SORTLINE_BUILD_REVISION": "abc123"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{prog} {package_version()} (revision abc123, Python ")


def test_trainer_subcommands_print_the_version_too() -> None:
    result = run("trainer.cli", "promote", "--version")
    assert result.returncode == 0 and result.stdout.startswith("trainer promote ")


def test_help_names_the_shared_flags() -> None:
    text = run("classifier_worker.cli", "--help").stdout
    for flag in ("--version", "--log-format", "--topology"):
        assert flag in text


def _env_with_url(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AMQP_URL", "SORTLINE_AMQP_URL_FILE")}
    return {**env, "SORTLINE_AMQP_URL": url}


@pytest.mark.parametrize(
    ("module", "args"), [("classifier_worker.cli", ()), ("camera_agent.cli", ("--source", "0"))]
)
def test_an_empty_broker_url_is_a_clear_exit_not_guest_at_localhost(module: str, args: tuple[str]) -> None:
    """A Secret key that is missing or blank arrives as an empty variable."""
    result = run(module, *args, env=_env_with_url(""))
    assert result.returncode == 2
    assert "the broker URL is empty" in result.stderr


def test_a_missing_url_file_is_a_clear_exit(tmp_path: Path) -> None:
    missing = tmp_path / "amqp-url"
    result = run("classifier_worker.cli", "--amqp-url-file", str(missing))
    assert result.returncode == 2
    assert f"cannot read {missing}" in result.stderr


def test_json_logs_are_one_object_per_line(tiny_model_dir: Path) -> None:
    """A worker whose broker is away logs its attempts; every line of its log parses as JSON."""
    nowhere = "amqp://guest:guest@127.0.0.1:1/%2F"
    worker = WorkerProcess(nowhere, "line-1", tiny_model_dir, "--log-format", "json", log_level="INFO")
    with worker:
        worker.wait_ready()
        deadline = time.monotonic() + 30
        while "unreachable" not in worker.output():
            assert time.monotonic() < deadline, worker.output()
            time.sleep(0.2)
    entries = [json.loads(line) for line in worker.output().splitlines() if line.strip()]
    lost = [e for e in entries if "unreachable" in e["message"]]
    assert lost and lost[0]["level"] == "WARNING" and lost[0]["logger"] == "classifier_worker.consumer"
    assert {"time", "level", "logger", "message", "thread"} <= entries[0].keys()
