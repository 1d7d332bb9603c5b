"""Settings: flags over environment over defaults, secret files, bounds, and no password in logs."""

from __future__ import annotations

import logging

import pytest

from camera_agent.settings import AgentSettings
from classifier_worker.settings import WorkerSettings
from sortline.settings import parse_cli, redact_url


def test_flags_override_environment_which_overrides_defaults(monkeypatch) -> None:
    monkeypatch.setenv("SORTLINE_LINE_ID", "from-env")
    monkeypatch.setenv("SORTLINE_MAX_BATCH", "8")
    settings = parse_cli(WorkerSettings, ["--max-batch", "32"], prog="classifier-worker")
    assert (settings.line_id, settings.max_batch, settings.prefetch) == ("from-env", 32, 64)


def test_amqp_url_comes_from_amqp_url_env(monkeypatch) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://u:p@broker:5672/site")
    assert (
        parse_cli(WorkerSettings, [], prog="w").amqp_url.get_secret_value() == "amqp://u:p@broker:5672/site"
    )


def test_the_url_can_come_from_a_secret_file(tmp_path) -> None:
    secret = tmp_path / "amqp-url"
    secret.write_text("amqps://cam:s3cret@broker.site:5671/site-a\n")
    settings = parse_cli(
        AgentSettings, ["--source", "0", "--amqp-url-file", str(secret)], prog="camera-agent"
    )
    assert settings.amqp_url.get_secret_value() == "amqps://cam:s3cret@broker.site:5671/site-a"
    assert "s3cret" not in repr(settings)


def test_an_unreadable_secret_file_exits_2_with_a_clear_message(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_cli(
            AgentSettings,
            ["--source", "0", "--amqp-url-file", str(tmp_path / "missing")],
            prog="camera-agent",
        )
    assert exited.value.code == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value"), [("--fps", "-1"), ("--jpeg-quality", "101"), ("--line-id", "a.b")]
)
def test_out_of_bounds_values_exit_2_naming_the_flag(flag, value, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_cli(AgentSettings, ["--source", "0", flag, value], prog="camera-agent")
    assert exited.value.code == 2
    assert flag in capsys.readouterr().err


def test_redaction_hides_the_password_only() -> None:
    assert redact_url("amqps://cam:s3cret@broker:5671/site") == "amqps://cam:***@broker:5671/site"
    assert redact_url("amqp://broker/") == "amqp://broker/"


def test_a_refused_login_is_a_clear_exit_2_without_the_password(amqp_url, tmp_path, caplog, capsys) -> None:
    from camera_agent.cli import main

    caplog.set_level(logging.DEBUG)
    (tmp_path / "a.jpg").write_bytes(b"")  # the folder must exist and hold an image name
    bad = amqp_url.replace("guest:guest", "guest:wrong-s3cret")
    assert main(["--source", str(tmp_path), "--amqp-url", bad, "--metrics-port", "0"]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "guest:***@" in err
    assert "wrong-s3cret" not in caplog.text + err


def test_the_worker_exits_2_on_a_refused_login_without_the_password(amqp_url, tiny_model_dir) -> None:
    import os
    import subprocess
    import sys

    bad = amqp_url.replace("guest:guest", "guest:wrong-s3cret")
    result = subprocess.run(
        [sys.executable, "-m", "classifier_worker.cli", "--model", str(tiny_model_dir),
         "--metrics-port", "0"],
        env={**os.environ, "AMQP_URL": bad}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "refused" in result.stderr and "guest:***@" in result.stderr
    assert "wrong-s3cret" not in result.stderr + result.stdout
