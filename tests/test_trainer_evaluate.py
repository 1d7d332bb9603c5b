"""``trainer evaluate``: data checked before the model loads, label folders mapped or left out on
purpose, figures the data cannot give said to be so, and the scored file named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sortline.manifest import MANIFEST_FILE, ModelManifest, ModelVariant, sha256_of
from sortline_runtime.model import CascadeModel
from tests.conftest import SAMPLES
from tests.tiny_model import write_tiny_model
from trainer.cli import main
from trainer.evaluation import command


def folder(root: Path, name: str, source: str, count: int = 3) -> Path:
    """``root/name`` holding ``count`` demo images of ``source``."""
    target = root / name
    target.mkdir(parents=True, exist_ok=True)
    for image in sorted((SAMPLES / source).glob("*.jpg"))[:count]:
        shutil.copy(image, target / image.name)
    return target


@pytest.fixture
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any model load fails the test: the checks under test must answer before one."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the data was checked")

    monkeypatch.setattr(command, "load_model", refuse)
    monkeypatch.setattr(CascadeModel, "load", refuse)


@pytest.fixture
def model_with_int8(tmp_path: Path) -> Path:
    """A tiny model whose manifest keeps an int8 variant within budget, as CPU workers would serve it."""
    out = write_tiny_model(tmp_path / "model")
    shutil.copy(out / "model.onnx", out / "model.int8.onnx")
    manifest = ModelManifest.model_validate_json((out / MANIFEST_FILE).read_text())
    int8 = ModelVariant(file="model.int8.onnx", sha256=sha256_of(out / "model.int8.onnx"), accuracy_delta=0.0)
    with_int8 = manifest.model_copy(update={"variants": {"int8": int8}})
    (out / MANIFEST_FILE).write_text(with_int8.model_dump_json())
    return out


def evaluate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["evaluate", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_unknown_label_folders_exit_2_with_one_line_before_any_model_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_model_load: None
) -> None:
    data = tmp_path / "data"
    for name, source in (("biological", "organic"), ("metal", "metal"), ("widgets", "glass")):
        folder(data, name, source)
    model = tmp_path / "no-model-here"  # a model error would come first if the model were read first
    code, out, err = evaluate(capsys, "--model", str(model), "--data", str(data))
    assert code == 2 and out == ""
    assert err.count("\n") == 1, err
    assert err.startswith(f"trainer evaluate: error: unknown label folders: biological, widgets in {data}; ")
    assert "accepted labels: organic, recyclable, cardboard, glass, metal, paper, plastic, trash" in err
    assert "--map biological=LABEL" in err and "--ignore widgets" in err


def test_missing_or_empty_data_exits_2_before_any_model_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_model_dir: Path, no_model_load: None
) -> None:
    model = str(tiny_model_dir)
    code, _, err = evaluate(capsys, "--model", model, "--data", str(tmp_path / "missing"))
    assert code == 2 and "data folder" in err and "does not exist" in err
    (tmp_path / "empty" / "glass").mkdir(parents=True)
    code, _, err = evaluate(capsys, "--model", model, "--data", str(tmp_path / "empty"))
    assert code == 2 and "holds no images (.jpg, .jpeg, .png) in glass" in err
    folder(tmp_path / "single", "glass", "glass", count=1)  # one image: nothing for validation
    code, _, err = evaluate(capsys, "--model", model, "--data", str(tmp_path / "single"), "--split", "val")
    assert code == 2 and "--split val holds no images" in err


def test_bad_map_or_ignore_fails_at_parse_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--model", str(tmp_path), "--data", str(tmp_path)]
    code, _, err = evaluate(capsys, *base, "--map", "biological=compost")
    assert code == 2 and "biological=compost: not a label; labels are organic, recyclable" in err
    code, _, err = evaluate(capsys, *base, "--map", "widgets=glass", "--ignore", "widgets")
    assert code == 2 and "widgets: both mapped (--map) and left out (--ignore)" in err


def test_mapped_folders_are_scored_under_their_label_and_ignored_ones_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_model_dir: Path
) -> None:
    data = tmp_path / "data"
    folder(data, "biological", "organic", count=4)
    folder(data, "metal", "metal", count=3)
    folder(data, "widgets", "glass", count=2)
    argv = ["--model", str(tiny_model_dir), "--data", str(data), "--json"]
    code, out, _ = evaluate(capsys, *argv, "--map", "biological=organic", "--ignore", "widgets")
    assert code == 0
    figures = json.loads(out)
    assert figures["n_images"] == 7 and figures["counts"] == {"organic": 4, "metal": 3}
    assert figures["label_folders"] == {"mapped": {"biological": "organic"}, "ignored": ["widgets"]}


def test_report_without_organic_items_says_the_roc_is_not_measurable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_model_dir: Path
) -> None:
    data = tmp_path / "data"
    folder(data, "metal", "metal")
    folder(data, "glass", "glass")
    report = tmp_path / "report"
    argv = ["--model", str(tiny_model_dir), "--data", str(data), "--report", str(report)]
    code, _, _ = evaluate(capsys, *argv)
    assert code == 0
    figures = json.loads((report / "report.json").read_text())
    assert figures["stage1_roc_auc"] is None
    assert figures["not_measurable"]["stage1_roc_auc"] == "no organic items"
    assert "stage1_roc_pr" not in figures["plots"] and not (report / "stage1_roc_pr.png").exists()
    summary = (report / "summary.md").read_text()
    assert "ROC AUC not measurable: no organic items" in summary
    assert "ROC AUC 0." not in summary and "(stage1_roc_pr.png)" not in summary


def test_the_scored_file_is_the_cpu_workers_unless_asked_and_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model_with_int8: Path
) -> None:
    data = tmp_path / "data"
    folder(data, "metal", "metal")
    base = ["--model", str(model_with_int8), "--data", str(data)]
    code, out, _ = evaluate(capsys, *base, "--json")
    assert code == 0
    figures = json.loads(out)
    assert (figures["scored_file"], figures["variant"]) == ("model.int8.onnx", "int8")
    assert figures["served_files"] == {"cpu": "model.int8.onnx", "gpu": "model.onnx"}
    report = tmp_path / "report"
    code, out, _ = evaluate(capsys, *base, "--variant", "main", "--report", str(report))
    assert code == 0 and "file model.onnx (main)" in out
    summary = (report / "summary.md").read_text()
    assert "scored with `model.onnx` (variant main)" in summary
    assert "CPU workers serve `model.int8.onnx`, not this file: score it with `--variant auto`." in summary


def test_help_names_the_new_flags_with_their_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = evaluate(capsys, "--help")
    text = " ".join(out.split())
    assert code == 0
    assert "--map FOLDER=LABEL" in text and "(default: none; env SORTLINE_MAP)" in text
    assert "--ignore FOLDER" in text and "(default: none; env SORTLINE_IGNORE)" in text
    assert "(default: 20; env SORTLINE_MIN_BIN_ITEMS)" in text
    assert "(default: auto; env SORTLINE_VARIANT)" in text
