"""End to end on a tiny synthetic dataset: ``trainer train`` in both modes, then evaluate and serve.

Uses the real pretrained backbone (no network), one epoch and 6 images per label. Each mode trains
once per module (fixtures); every step that follows is a test of its own, so the first failure
does not hide the others.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from sortline.labels import BINS, MATERIALS
from sortline.manifest import ModelManifest, load_manifest, write_manifest
from sortline_runtime.imaging import load_rgb, to_model_input
from sortline_runtime.model import AUTO_VARIANT_MAX_ACCURACY_COST, CascadeModel
from trainer.cli import main
from trainer.data.splits import Splits, make_splits
from trainer.evaluation.scoring import score
from trainer.release.calibrate import calibrate_cascade
from trainer.release.export import PARITY_TOLERANCE
from trainer.release.variants import INT8_FILE, agreement, variant_model

LABELS = ("organic", "recyclable", *MATERIALS)
PER_LABEL = 6
# 6 files a label (7 in glass with the broken one): 1 to validation, 1 of the rest to calibration.
FIT_COUNTS = {label: 5 if label == "glass" else 4 for label in LABELS}


def draw(label_index: int, seed: int) -> np.ndarray:
    """A coloured shape on a noisy background; colour and shape depend on the label."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, size=(180, 240, 3), dtype=np.uint8)
    colour = tuple(int(c) for c in cv2.applyColorMap(np.uint8([[label_index * 30]]), cv2.COLORMAP_JET)[0, 0])
    centre = (int(rng.integers(80, 160)), int(rng.integers(60, 120)))
    if label_index % 2:
        cv2.circle(image, centre, int(rng.integers(30, 55)), colour, -1)
    else:
        cv2.rectangle(image, (centre[0] - 40, centre[1] - 30), (centre[0] + 40, centre[1] + 30), colour, -1)
    return image


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "shapes"
    for index, label in enumerate(LABELS):
        (root / label).mkdir(parents=True)
        for i in range(PER_LABEL):
            cv2.imwrite(str(root / label / f"{label}{i}.jpg"), draw(index, seed=100 * index + i))
    (root / "glass" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


@dataclass(frozen=True)
class Trained:
    """A model directory written by one ``trainer train`` run, and what that run printed."""

    out: Path
    run_dir: Path
    stdout: str

    @property
    def manifest(self) -> ModelManifest:
        return load_manifest(self.out)  # verifies the sha256 of model.onnx

    def splits(self, data_dir: Path) -> Splits:
        """The three parts of the data, with the fractions the manifest records."""
        training = self.manifest.training
        return make_splits([data_dir], training.val_fraction, training.calib_fraction)


def _train(argv: list[str], out: Path, run_dir: Path) -> Trained:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(argv) == 0
    return Trained(out, run_dir, stdout.getvalue())


@pytest.fixture(scope="module")
def heads_model(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("heads")
    argv = ["train", "--mode", "heads", "--data", str(data_dir), "--out", str(root / "model")]
    argv += ["--epochs", "1", "--hidden", "0", "--no-int8", "--no-fp16", "--no-mirror-average"]
    argv += ["--cache-dir", str(root / "cache")]
    return _train(argv, root / "model", root / "run")


@pytest.fixture(scope="module")
def finetune_model(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("finetune")
    argv = ["train", "--data", str(data_dir), "--out", str(root / "model"), "--epochs", "1"]
    argv += ["--image-size", "64", "--final-epochs", "0", "--batch-size", "8", "--calib-fraction", "0.2"]
    argv += ["--speed-seconds", "0.1", "--run-dir", str(root / "run"), "--cache-dir", str(root / "cache")]
    argv += ["--qat-steps", "2"]
    return _train(argv, root / "model", root / "run")


def test_heads_mode_records_its_splits_and_the_undecodable_file(heads_model: Trained) -> None:
    manifest = heads_model.manifest
    assert heads_model.stdout.strip() == f"wrote {heads_model.out} ({manifest.version})"
    assert manifest.version.startswith("lite0-heads-")
    assert manifest.architecture == "efficientnet_lite0 (frozen) + 2 heads"
    assert manifest.training.counts == FIT_COUNTS
    assert manifest.training.calibration_counts == dict.fromkeys(LABELS, 1)
    assert manifest.training.validation_counts == dict.fromkeys(LABELS, 1)
    assert manifest.training.skipped_undecodable == 1  # broken.jpg falls in the fit part
    assert manifest.training.heads["epochs"] == 1 and manifest.training.heads["hidden"] == 0
    assert manifest.variants == {} and "int8" not in manifest.validation


def test_exported_graph_matches_torch(heads_model: Trained, finetune_model: Trained) -> None:
    for trained in (heads_model, finetune_model):
        parity = trained.manifest.training.onnx_parity
        assert parity["tolerance"] == PARITY_TOLERANCE
        assert max(parity["p_organic"], parity["material_probs"]) < PARITY_TOLERANCE, trained.out
        assert parity["material_agreement"] == 1.0, trained.out


def test_thresholds_are_calibrated_on_the_calibration_subset_through_the_served_model(
    heads_model: Trained, data_dir: Path
) -> None:
    scored = score(CascadeModel.load(heads_model.out), heads_model.splits(data_dir).calib, workers=1)
    expected, _ = calibrate_cascade(
        [s.label for s in scored.samples], scored.p_organic, scored.material_probs
    )
    assert heads_model.manifest.thresholds == expected


def test_validation_figures_cover_every_validation_image(heads_model: Trained) -> None:
    validation = heads_model.manifest.validation
    assert validation["n_images"] == len(LABELS)
    assert validation["counts"] == dict.fromkeys(LABELS, 1)


def test_served_model_gives_probabilities_and_bins(heads_model: Trained, data_dir: Path) -> None:
    model = CascadeModel.load(heads_model.out)
    image = load_rgb(data_dir / "metal" / "metal0.jpg", model.manifest.input)
    prediction = model.predict(to_model_input([image, image], model.manifest.input))
    assert prediction.p_organic.shape == (2,)
    assert prediction.material_probs.shape == (2, len(MATERIALS))
    assert np.allclose(prediction.material_probs.sum(axis=1), 1.0, atol=1e-5)
    first, second = model.decide(prediction)
    assert first == second and first.bin in BINS


def test_evaluate_prints_json_and_writes_one_line_per_image(
    heads_model: Trained, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    predictions = tmp_path / "pred.jsonl"
    argv = ["evaluate", "--model", str(heads_model.out), "--data", str(data_dir), "--split", "val", "--json"]
    assert main([*argv, "--predictions", str(predictions)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_images"] == len(LABELS)
    assert report["model_version"] == heads_model.manifest.version
    assert report["val_fraction"] == heads_model.manifest.training.val_fraction
    assert set(report["per_bin"]) == set(BINS)
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert sorted(row["label"] for row in rows) == sorted(LABELS)
    assert {"path", "label", "bin", "confidence", "p_organic", "material", "material_probs"} <= set(rows[0])


def test_finetune_is_the_default_mode_and_records_qat_and_calibration(finetune_model: Trained) -> None:
    manifest = finetune_model.manifest
    assert manifest.version.startswith("lite0-ft-")
    assert manifest.architecture.endswith(", mean of the image and its mirror")
    assert manifest.training.quantization_aware["steps"] == 2  # timm's norms folded, exported, parity held
    assert sum(manifest.training.calibration_counts.values()) == len(LABELS)
    assert manifest.training.command.startswith("trainer train --data ")
    assert manifest.validation["n_images"] == len(LABELS)
    assert (finetune_model.run_dir / "last.pt").is_file()


def test_int8_variant_is_kept_exactly_when_within_the_budget(finetune_model: Trained) -> None:
    manifest = finetune_model.manifest
    int8 = manifest.validation["int8"]
    assert set(int8["speed_img_per_s"]) == {"fp32_b16", "int8_b16", "fp32_b32", "int8_b32"}
    assert int8["kept"] == (int8["accuracy_delta"] >= -AUTO_VARIANT_MAX_ACCURACY_COST)
    assert ("int8" in manifest.variants) == int8["kept"]
    assert (finetune_model.out / INT8_FILE).is_file() == int8["kept"]


def test_fp16_variant_agrees_with_fp32_and_loads_verified(finetune_model: Trained) -> None:
    manifest = finetune_model.manifest
    fp16 = manifest.validation["fp16"]
    assert fp16["vs_fp32"]["max_abs_diff_material_probs"] < 0.02  # half precision, same network
    assert fp16["kept"] and manifest.variants["fp16"].file == "model.fp16.onnx"
    assert CascadeModel.load(finetune_model.out, variant="fp16").version == f"{manifest.version}+fp16"


def test_variant_agreement_is_measured_on_the_validation_images(
    finetune_model: Trained, data_dir: Path
) -> None:
    manifest, val = finetune_model.manifest, finetune_model.splits(data_dir).val
    fp32 = score(CascadeModel.load(finetune_model.out), val, workers=1)
    fp16 = score(variant_model(finetune_model.out, manifest, "model.fp16.onnx"), val, workers=1)
    assert manifest.validation["fp16"]["vs_fp32"] == pytest.approx(agreement(fp32, fp16))


def test_variants_command_rebuilds_a_variant_without_retraining(
    finetune_model: Trained, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model"
    shutil.copytree(finetune_model.out, out)
    manifest = load_manifest(out)
    (out / "model.fp16.onnx").unlink()
    write_manifest(out, manifest.model_copy(update={"variants": {}}))
    assert main(["variants", "--model", str(out), "--data", str(data_dir), "--no-int8"]) == 0
    assert "fp16: material accuracy" in capsys.readouterr().out
    rebuilt = load_manifest(out)
    assert set(rebuilt.variants) == {"fp16"} and rebuilt.onnx_sha256 == manifest.onnx_sha256
    assert CascadeModel.load(out, variant="fp16").version == f"{manifest.version}+fp16"


def test_evaluate_report_writes_summary_and_plots(
    finetune_model: Trained, data_dir: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report"
    argv = ["evaluate", "--model", str(finetune_model.out), "--data", str(data_dir), "--split", "val"]
    assert main([*argv, "--report", str(report)]) == 0
    figures = json.loads((report / "report.json").read_text())
    assert figures["n_images"] == len(LABELS)
    assert set(figures["from_manifest"]["variants"]) == {"int8", "fp16"}
    assert (report / "worst_mistakes.png").is_file()
    assert f"# Model report: {finetune_model.manifest.version}" in (report / "summary.md").read_text()


def test_bad_data_dir_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "m")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "nolabels" / "shoes").mkdir(parents=True)
    assert main(["evaluate", "--model", "models/default", "--data", str(tmp_path / "nolabels")]) == 2
    assert "unknown label folders: shoes in " in capsys.readouterr().err


def test_missing_model_exits_2(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--model", str(tmp_path), "--data", str(data_dir)]) == 2
    assert "manifest.json" in capsys.readouterr().err


def test_negative_qat_steps_fail_at_parse_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--mode", "finetune", "--data", str(tmp_path), "--out", str(tmp_path / "m")]
    assert main([*argv, "--qat-steps", "-1"]) == 2
    assert "--qat-steps: Input should be greater than or equal to 0" in capsys.readouterr().err
