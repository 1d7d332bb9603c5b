"""``--help`` as the settings models write it: placeholders, allowed values, bounds, defaults, variables;
choices in any case."""

from __future__ import annotations

import re

import pytest
from pydantic_settings import BaseSettings

from bench.__main__ import BenchSettings
from camera_agent.settings import AgentSettings
from classifier_worker.settings import WorkerSettings
from ejector_bridge.settings import BridgeSettings
from sortline.belt import Direction
from sortline.cli_help import bounds_text
from sortline.labels import BINS, DATA_LABELS
from sortline.settings import parse_cli
from sortline_dev.demo import DemoSettings
from trainer.cli import main as trainer_main
from trainer.settings import COMMANDS as TRAINER_COMMANDS

COMMANDS: dict[str, type[BaseSettings]] = {
    "classifier-worker": WorkerSettings,
    "camera-agent": AgentSettings,
    "ejector-bridge": BridgeSettings,
    "sortline-demo": DemoSettings,
    "python -m bench": BenchSettings,
    **{f"trainer {name}": settings for name, settings in TRAINER_COMMANDS.items()},
}
#: Placeholders pydantic-settings would print: Python's type names.
PYTHON_TYPES = re.compile(r"\b(SecretStr|Path|int|float|str|bool|list\[|tuple\[|dict\[)")


def help_text(settings: type[BaseSettings], prog: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        parse_cli(settings, ["--help"], prog)
    assert exited.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def placeholders(text: str) -> list[str]:
    """What follows each flag in the usage line: ``[--max-batch N]`` -> ``N``."""
    usage = text.split(" options: ", 1)[0]
    return re.findall(r"\[--[a-z0-9-]+ ([^\]|]+?)\]", usage)


@pytest.mark.parametrize("prog", sorted(COMMANDS))
def test_every_flag_says_its_bounds_default_and_variable(
    prog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = COMMANDS[prog]
    text = help_text(settings, prog, capsys)
    assert "null" not in text and "**********" not in text
    assert placeholders(text) and not [p for p in placeholders(text) if PYTHON_TYPES.search(p)]
    for name, field in settings.model_fields.items():
        flag = "--" + (field.alias or name).replace("_", "-")
        assert f" {flag}" in text, flag
        assert bounds_text(field) in text, flag
        if field.alias is None and field.validation_alias is None:
            assert re.search(rf"env SORTLINE_{name.upper()}\b", text), f"{flag} does not name its variable"


def test_the_worker_help_reads_as_the_readme_promises(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(WorkerSettings, "classifier-worker", capsys)
    assert "--amqp-url URL" in text and "--model PATH" in text and "--cameras ID,..." in text
    assert "default: amqp://guest:***@localhost:5672/%2F; env AMQP_URL or SORTLINE_AMQP_URL" in text
    assert "--log-level {DEBUG,INFO,WARNING,ERROR}" in text
    assert "--line-id ID Sorting line whose frames queue this worker serves. [1-64 characters, letters, " \
        "digits, _ and -] (default: line-1; env SORTLINE_LINE_ID)" in text  # fmt: skip
    assert "--inference-spin, --no-inference-spin" in text and "(default: off;" in text
    assert "--SORTLINE-AMQP-URL" not in text and "--sortline-amqp-url" not in text


def test_allowed_values_and_label_names_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    bridge = help_text(BridgeSettings, "ejector-bridge", capsys)
    assert "--bins BIN,..." in bridge and f"[each one of: {', '.join(BINS)}]" in bridge
    assert "--bar-span LEFT,RIGHT" in bridge
    agent = help_text(AgentSettings, "camera-agent", capsys)
    assert (
        "--roi X,Y,W,H" in agent
        and "--jpeg-quality N JPEG quality of published frames. [>= 30, <= 100]" in agent
    )
    assert "{" + ",".join(d.value for d in Direction) + "}" in agent
    train = help_text(TRAINER_COMMANDS["train"], "trainer train", capsys)
    assert "--data [DIR ...]" in train and f"Labels (folder names): {', '.join(DATA_LABELS)}." in train


def test_the_trainer_help_is_plain_text_and_describes_every_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert trainer_main(["--help"]) == 0
    listing = capsys.readouterr().out
    assert "``" not in listing and "trainer: train, evaluate" in listing
    for name, settings in TRAINER_COMMANDS.items():
        summary = settings.__doc__.strip().splitlines()[0]
        assert f"  {name}" in listing and summary in listing
        assert trainer_main([name, "--help"]) == 0
        assert summary in capsys.readouterr().out


def test_the_description_keeps_its_paragraphs_unindented(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_cli(BridgeSettings, ["--help"], "ejector-bridge")
    text = capsys.readouterr().out
    assert "\nOne valve bar from flags" in text


@pytest.mark.parametrize(
    ("flags", "field", "expected"),
    [
        (["--log-level", "debug"], "log_level", "DEBUG"),
        (["--log-format", "JSON"], "log_format", "json"),
        (["--topology", "Check"], "topology", "check"),
        (["--bins", "Plastic,METAL"], "bins", ["plastic", "metal"]),
    ],
)
def test_choices_are_accepted_in_any_case(flags: list[str], field: str, expected: object) -> None:
    assert getattr(parse_cli(BridgeSettings, flags, "ejector-bridge"), field) == expected


def test_enum_choices_in_any_case_and_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SORTLINE_LOG_LEVEL", "warning")
    for spelling in ("Left-To-Right", "left_to_right", "LEFT_TO_RIGHT"):  # its value or its name
        settings = parse_cli(AgentSettings, ["--source", "0", "--belt-direction", spelling], "camera-agent")
        assert (settings.log_level, settings.belt_direction) == ("WARNING", Direction.LEFT_TO_RIGHT)


def test_a_value_outside_the_choices_names_the_flag_and_the_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_cli(BridgeSettings, ["--bins", "plastik"], "ejector-bridge")
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("ejector-bridge: --bins: ") and "'plastic'" in err
