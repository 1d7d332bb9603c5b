"""End to end on a tiny synthetic dataset: ``trainer train`` then ``trainer evaluate`` and serving.

Uses the real pretrained backbone (no network), one epoch and 6 images per label, so it runs in
well under 90 s on the 2-core machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from sortline.labels import BINS, MATERIALS
from sortline.manifest import load_manifest, write_manifest
from sortline_runtime.imaging import to_model_input
from sortline_runtime.model import CascadeModel
from trainer.cli import main
from trainer.features import load_rgb

LABELS = ("organic", "recyclable", *MATERIALS)


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
        for i in range(6):
            cv2.imwrite(str(root / label / f"{label}{i}.jpg"), draw(index, seed=100 * index + i))
    (root / "glass" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def test_train_then_evaluate_gives_a_served_model(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "model"
    argv = [
        "train",
        "--mode",
        "heads",
        "--data",
        str(data_dir),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--hidden",
        "0",
    ]
    assert main([*argv, "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "broken.jpg" in caplog.text

    manifest = load_manifest(out)  # verifies the sha256 of model.onnx
    assert manifest.version.startswith("lite0-heads-")
    assert manifest.training.counts["glass"] == 5  # 7 files: 1 broken, 1 validation
    assert manifest.training.skipped_undecodable == 1
    assert max(manifest.training.onnx_parity_max_abs_diff[k] for k in ("p_organic", "material_probs")) < 1e-4
    assert manifest.validation["n_images"] == len(LABELS)
    assert 0.0 <= manifest.thresholds.organic <= 1.0

    model = CascadeModel.load(out)
    image = load_rgb(data_dir / "metal" / "metal0.jpg", manifest.input)
    prediction = model.predict(to_model_input([image, image], manifest.input))
    assert prediction.p_organic.shape == (2,)
    assert prediction.material_probs.shape == (2, len(MATERIALS))
    assert np.allclose(prediction.material_probs.sum(axis=1), 1.0, atol=1e-5)
    assert model.decide(prediction)[0].bin in BINS

    capsys.readouterr()
    predictions = tmp_path / "pred.jsonl"
    argv = ["evaluate", "--model", str(out), "--data", str(data_dir), "--split", "val", "--json"]
    assert main([*argv, "--predictions", str(predictions)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_images"] == len(LABELS)
    assert report["model_version"] == manifest.version
    assert set(report["per_bin"]) == set(BINS)
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(rows) == len(LABELS)
    assert {"path", "label", "bin", "confidence", "p_organic", "material", "material_probs"} <= set(rows[0])


def test_finetune_trains_calibrates_and_exports_fp32_int8_and_fp16(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ft"
    argv = ["train", "--mode", "finetune", "--data", str(data_dir), "--out", str(out), "--epochs", "1"]
    argv += ["--image-size", "64"]
    argv += ["--final-epochs", "0", "--batch-size", "8", "--calib-fraction", "0.2", "--speed-seconds", "0.1"]
    argv += ["--run-dir", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"), "--qat-steps", "2"]
    assert main(argv) == 0
    manifest = load_manifest(out)
    assert manifest.version.startswith("lite0-ft-")
    assert manifest.training.quantization_aware["steps"] == 2  # timm's norms folded, exported, parity held
    assert manifest.training.calibration_counts  # thresholds come from the calibration subset
    assert manifest.training.onnx_parity["material_probs"] < 1e-4
    assert manifest.validation["n_images"] == len(LABELS)
    int8 = manifest.validation["int8"]
    assert {"fp32_b16", "int8_b16", "fp32_b32", "int8_b32"} == set(int8["speed_img_per_s"])
    assert 0.0 <= int8["vs_fp32"]["bin_agreement"] <= 1.0
    if int8["kept"]:
        assert "int8" in manifest.variants and (out / manifest.variants["int8"].file).is_file()
    fp16 = manifest.validation["fp16"]
    assert fp16["vs_fp32"]["max_abs_diff_material_probs"] < 0.02  # half precision, same network
    assert fp16["kept"] and manifest.variants["fp16"].file == "model.fp16.onnx"
    assert CascadeModel.load(out, variant="fp16").version == f"{manifest.version}+fp16"  # sha256 checked
    assert (tmp_path / "run" / "last.pt").is_file()

    # `trainer variants` rebuilds a variant of a finished model without retraining it.
    (out / "model.fp16.onnx").unlink()
    write_manifest(out, manifest.model_copy(update={"variants": {}}))
    assert main(["variants", "--model", str(out), "--data", str(data_dir), "--no-int8"]) == 0
    assert "fp16: material accuracy" in capsys.readouterr().out
    rebuilt = load_manifest(out)
    assert set(rebuilt.variants) == {"fp16"} and rebuilt.onnx_sha256 == manifest.onnx_sha256
    assert CascadeModel.load(out, variant="fp16").version == f"{manifest.version}+fp16"

    capsys.readouterr()
    report = tmp_path / "report"
    argv = [
        "evaluate",
        "--model",
        str(out),
        "--data",
        str(data_dir),
        "--split",
        "val",
        "--report",
        str(report),
    ]
    assert main(argv) == 0
    assert (report / "summary.md").is_file() and (report / "worst_mistakes.png").is_file()


def test_bad_data_dir_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "m")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "nolabels" / "shoes").mkdir(parents=True)
    assert main(["evaluate", "--model", "models/default", "--data", str(tmp_path / "nolabels")]) == 2
    assert "no label folders" in capsys.readouterr().err


def test_missing_model_exits_2(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--model", str(tmp_path), "--data", str(data_dir)]) == 2
    assert "manifest.json" in capsys.readouterr().err


def test_negative_qat_steps_fail_at_parse_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--mode", "finetune", "--data", str(tmp_path), "--out", str(tmp_path / "m")]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--qat-steps", "-1"])
    assert exit_info.value.code == 2 and "must be >= 0" in capsys.readouterr().err
