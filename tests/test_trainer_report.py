"""``trainer evaluate --report``: JSON, PNG plots and markdown from scored images."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from sortline.cascade import CascadeThresholds
from sortline.labels import MATERIALS, expected_bin
from sortline.manifest import ModelManifest
from sortline_runtime.model import decide_batch
from trainer.data.dataset import Sample
from trainer.evaluation.metrics import compute_metrics
from trainer.evaluation.report import worst_mistakes, write_report
from trainer.evaluation.scoring import ScoredSet

PNGS = {
    "confusion_stage1.png",
    "confusion_material.png",
    "confusion_bins.png",
    "stage1_roc_pr.png",
    "purity_recovery.png",
    "worst_mistakes.png",
}


def scored_set(root: Path) -> ScoredSet:
    """40 images, mostly right, a few confidently wrong."""
    rng = np.random.default_rng(0)
    labels = ["organic"] * 10 + [MATERIALS[i % len(MATERIALS)] for i in range(30)]
    samples, p, rows = [], [], []
    for i, label in enumerate(labels):
        path = root / label / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), rng.integers(0, 255, size=(60, 80, 3), dtype=np.uint8))
        samples.append(Sample(path, label, f"synthetic/{label}/{i}.jpg"))
        p.append(0.9 if label == "organic" else rng.uniform(0.0, 0.3))
        called = label if label in MATERIALS and i % 7 else MATERIALS[(i + 1) % len(MATERIALS)]
        probs = np.full(len(MATERIALS), 0.02)
        probs[MATERIALS.index(called)] = 0.9
        rows.append(probs / probs.sum())
    p_arr, probs_arr = np.array(p), np.array(rows)
    decisions = decide_batch(p_arr, probs_arr, CascadeThresholds(organic=0.5, material_min_confidence=0.5))
    return ScoredSet(samples, p_arr, probs_arr, decisions, [])


def test_report_writes_json_pngs_and_summary(tmp_path: Path) -> None:
    scored = scored_set(tmp_path / "data")
    labels = [s.label for s in scored.samples]
    metrics = {
        "model_version": "test",
        "split": "val",
        "thresholds": {"organic": 0.5, "material_min_confidence": 0.5},
        **compute_metrics(labels, scored.p_organic, scored.material_probs, scored.decisions),
    }
    manifest = ModelManifest(
        version="test",
        created_at="2026-01-01T00:00:00+00:00",
        architecture="test",
        onnx_sha256="0" * 64,
        thresholds=CascadeThresholds(organic=0.5, material_min_confidence=0.5),
    )
    out = tmp_path / "report"
    write_report(out, scored, metrics, manifest)
    assert {p.name for p in out.glob("*.png")} >= PNGS
    assert all(p.stat().st_size < 300_000 for p in out.glob("*.png"))
    report = json.loads((out / "report.json").read_text())
    assert set(report["plots"].values()) == PNGS
    assert report["stage1_roc_auc"] == 1.0  # every organic image scores 0.9, every other at most 0.3
    summary = (out / "summary.md").read_text()
    assert "| material accuracy (the five recyclables) |" in summary
    assert "purity_recovery.png" in summary


def test_worst_mistakes_put_wrong_ejections_first(tmp_path: Path) -> None:
    scored = scored_set(tmp_path)
    wrong = [
        i
        for i, (sample, decision) in enumerate(zip(scored.samples, scored.decisions, strict=True))
        if decision.bin != expected_bin(sample.label)
    ]
    ejected = [i for i in wrong if scored.decisions[i].bin != "residual"]
    assert len(ejected) == 3 and len(wrong) == 4  # what the fixture holds
    picked = worst_mistakes(scored, count=5)
    assert sorted(picked) == wrong  # every mistake, when fewer than asked for
    assert set(picked[:3]) == set(ejected)  # wrong ejections first: they cost purity
    first = [scored.decisions[i].confidence for i in picked[:3]]
    assert first == sorted(first, reverse=True)  # the most confident first
    assert worst_mistakes(scored, count=2) == picked[:2]


def _report(tmp_path: Path, min_bin_items: int, manifest: ModelManifest | None = None) -> tuple[dict, str]:
    """report.json and summary.md of the fixture's 40 images (five or so per bin)."""
    scored = scored_set(tmp_path / "data")
    labels = [s.label for s in scored.samples]
    metrics = {
        "model_version": "test",
        "split": "all",
        "thresholds": {"organic": 0.5, "material_min_confidence": 0.5},
        **compute_metrics(labels, scored.p_organic, scored.material_probs, scored.decisions),
    }
    manifest = manifest or ModelManifest(
        version="test", created_at="2026-01-01T00:00:00+00:00", architecture="test", onnx_sha256="0" * 64
    )
    out = tmp_path / f"report-{min_bin_items}"
    write_report(out, scored, metrics, manifest, min_bin_items=min_bin_items)
    return json.loads((out / "report.json").read_text()), (out / "summary.md").read_text()


def purity_row(summary: str) -> str:
    return next(line for line in summary.splitlines() if line.startswith("| worst bin purity |"))


def test_a_purity_from_fewer_items_than_the_minimum_is_shown_but_not_judged(tmp_path: Path) -> None:
    report, summary = _report(tmp_path, min_bin_items=20)
    worst = min(
        (f for name, f in report["per_bin"].items() if name != "residual" and f["purity"] is not None),
        key=lambda f: f["purity"],
    )
    assert worst["purity"] < 0.97 and worst["predicted"] < 20  # a verdict would say "not met"
    assert report["min_bin_items"] == 20
    assert purity_row(summary) == (
        "| worst bin purity | >= 97.0% | not measurable: no sorted bin holds 20 items | no verdict |"
    )
    assert f"(of {worst['predicted']}, too few to judge)" in summary
    assert "Bins with fewer than 20 items, shown but not judged: " in summary
    _, judged = _report(tmp_path, min_bin_items=1)
    assert purity_row(judged).endswith("| **not met** |")  # the same figures, judged once they may be


def test_figures_copied_from_the_manifest_are_labelled_as_training_time(tmp_path: Path) -> None:
    int8 = {
        "validation": {"material_accuracy": 0.94},
        "accuracy_delta": 0.001,
        "vs_fp32": {"bin_agreement": 0.98},
        "kept": True,
        "speed_img_per_s": {"int8_b16": 226.6},
    }
    manifest = ModelManifest(
        version="test",
        created_at="2026-01-01T00:00:00+00:00",
        architecture="test",
        onnx_sha256="0" * 64,
        validation={"int8": int8},
    )
    report, summary = _report(tmp_path, min_bin_items=20, manifest=manifest)
    assert report["from_manifest"]["variants"] == {"int8": int8}
    assert "not measured in this run" in report["from_manifest"]["source"]
    assert "## int8 variant (for CPU workers), as recorded at training time" in summary
    assert "From manifest.json, measured when the model was trained" in summary
    assert "not in this run" in summary and "Speed on the training machine" in summary
