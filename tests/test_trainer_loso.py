"""Leave-one-source-out: heads trained on the other sources score the one left out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.data.dataset import Sample
from trainer.evaluation import loso
from trainer.fit.config import HeadConfig
from trainer.fit.frozen_features import FeatureSet
from trainer.model.backbone import FEATURE_DIM


def _samples(source: str, labels: list[str]) -> list[Sample]:
    return [Sample(Path(f"/x/{source}/{label}/{i}.jpg"), label, f"{source}/{label}/{i}.jpg")
            for i, label in enumerate(labels)]  # fmt: skip


def _features(samples: list[Sample], shift: dict[str, float]) -> np.ndarray:
    """Each label lights its own feature; a source may move everything (a new camera)."""
    rng = np.random.default_rng(0)
    order = {label: i for i, label in enumerate(sorted({s.label for s in samples}))}
    rows = np.zeros((len(samples), 2, FEATURE_DIM), np.float32)
    for i, s in enumerate(samples):
        rows[i, :, order[s.label]] = 5.0
        rows[i] += shift[loso.source_of(s)] + rng.normal(0, 0.1, (2, FEATURE_DIM))
    return rows


def test_each_source_with_materials_is_left_out_once(monkeypatch) -> None:
    labels = ["glass", "metal", "paper", "organic"] * 25
    samples = _samples("a", labels) + _samples("b", labels) + _samples("extra", ["battery"] * 10)
    kept = [s for s in samples if loso.source_of(s) in ("a", "b")]
    features = _features(kept, {"a": 0.0, "b": 0.0})
    monkeypatch.setattr(loso.frozen_features, "extract",
                        lambda got, *a, **k: FeatureSet(list(got), features, []))  # fmt: skip
    result = loso.leave_one_source_out(samples, cfg=HeadConfig(epochs=30, hidden=16, batch_size=32))
    assert set(result["held_out"]) == {"a", "b"}  # "extra" has no recyclables: never held out
    assert result["held_out"]["a"]["trained_on"] == ["b"]
    for figures in result["held_out"].values():
        assert figures["n_images"] == 100
        assert figures["recyclable_material_accuracy"] > 0.9  # same-looking sources: easy
    assert "| a | b | 100 |" in loso.render_markdown(result)


def test_figures_count_only_what_the_labels_can_tell() -> None:
    from trainer.fit.cross_fit import Outputs

    probs = np.eye(6, dtype=np.float32)[[0, 1, 1, 5]]  # cardboard, glass, glass, trash
    outputs = Outputs(np.array([0.1, 0.2, 0.9, 0.7], np.float32), probs, None)
    figures = loso.held_out_figures(["cardboard", "glass", "organic", "trash"], outputs)
    assert figures["recyclable_material_accuracy"] == 1.0
    assert figures["material_accuracy"] == 1.0
    assert figures["stage1_accuracy"] == 0.75  # the trash item called organic
