"""``trainer`` flags: pydantic-settings models, SORTLINE_<FLAG> variables, bounds in --help, mode defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from sortline.cli_help import bounds_text
from sortline.settings import parse_cli
from trainer.cli import main
from trainer.fit.config import FinetuneConfig, HeadConfig
from trainer.pipelines.train import run_from_settings
from trainer.settings import COMMANDS, TrainSettings


def train_settings(*flags: str) -> TrainSettings:
    return parse_cli(TrainSettings, ["--data", "a", "b", "--out", "m", *flags], "trainer train")


def test_every_flag_has_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SORTLINE_VAL_FRACTION", "0.2")
    monkeypatch.setenv("SORTLINE_QAT_STEPS", "7")
    settings = train_settings()
    assert (settings.val_fraction, settings.qat_steps) == (0.2, 7)
    assert settings.data == [Path("a"), Path("b")]
    assert train_settings("--qat-steps", "3").qat_steps == 3  # a flag beats its variable


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_explains_every_flag_with_its_bounds(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    fields = COMMANDS[command].model_fields
    for name, field in fields.items():
        flag = "--" + (field.alias or name).replace("_", "-")
        assert flag in text, flag
        assert field.description, f"{command} {flag} has no description"
        assert bounds_text(field) in text, flag


def test_bounded_fields_say_so_in_help() -> None:
    assert bounds_text(TrainSettings.model_fields["val_fraction"]) == "[>= 0.0, < 1.0]"
    assert bounds_text(TrainSettings.model_fields["out"]) == ""


def test_without_a_command_the_commands_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    listed = capsys.readouterr().err
    assert all(f"\n  {name} " in listed for name in COMMANDS)
    assert main(["--help"]) == 0
    assert "trainer COMMAND --help" in capsys.readouterr().out


def test_finetune_is_the_default_mode_with_its_own_epochs() -> None:
    run = run_from_settings(train_settings(), "trainer train")
    assert run.mode == "finetune"
    assert (run.finetune.epochs, run.finetune.batch_size) == (
        FinetuneConfig.epochs,
        FinetuneConfig.batch_size,
    )
    assert run.heads == HeadConfig()  # the refit keeps the heads' own schedule
    assert run.qat is not None and run.qat.steps == 150


def test_heads_mode_gives_the_epochs_to_the_heads() -> None:
    run = run_from_settings(train_settings("--mode", "heads"), "trainer train")
    assert run.heads is not None
    assert (run.heads.epochs, run.heads.batch_size) == (HeadConfig.epochs, HeadConfig.batch_size)
    run = run_from_settings(train_settings("--mode", "heads", "--epochs", "3"), "trainer train")
    assert run.heads is not None and run.heads.epochs == 3


def test_switches_turn_steps_off() -> None:
    run = run_from_settings(train_settings("--no-refit-heads", "--qat-steps", "0", "--no-int8"), "t --resume")
    assert run.heads is None and run.qat is None and run.release.int8 is False
    assert run.command == "t"  # resuming does not change the result, so it is not recorded
