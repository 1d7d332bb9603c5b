"""Frozen-backbone features for heads mode, extracted once with ONNX Runtime and cached on disk.

Feature extraction is the expensive part of training (ORT runs the backbone ~4x faster than torch
eager on the 2-core CPU), so the backbone is exported to ONNX once and every image's pooled
features (plain and horizontally flipped) are stored under the cache folder, keyed by the
backbone identity and the file's absolute path, size and mtime. Images go through exactly the
serving runtime's preprocessing (``sortline_runtime.imaging``), as the worker reads frames.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort  # for the type of a session
from tqdm import tqdm

from sortline.manifest import InputSpec
from sortline_runtime.imaging import to_model_input
from sortline_runtime.sessions import open_session
from trainer.data.dataset import Sample
from trainer.data.images import load_rgb_or_none
from trainer.model.backbone import BACKBONE_ID, FEATURE_DIM, create_backbone
from trainer.model.onnx_export import export_onnx

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path(".cache/features")


@dataclass(frozen=True)
class FeatureSet:
    """Features of the images that decoded: ``features[i]`` is [2, 1280] (plain, flipped)."""

    samples: list[Sample]
    features: np.ndarray  # [N, 2, FEATURE_DIM] float32
    skipped: list[Sample]


def backbone_session(cache_dir: Path, threads: int = 0) -> ort.InferenceSession:
    """ORT session of the headless backbone, exporting it to the cache folder on first use."""

    onnx_path = cache_dir / f"{BACKBONE_ID}.onnx"
    if not onnx_path.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = onnx_path.with_suffix(".tmp.onnx")
        export_onnx(create_backbone(), tmp, output_names=["features"])
        tmp.replace(onnx_path)
        log.info("exported backbone for feature extraction to %s", onnx_path)
    return open_session(onnx_path, threads=threads)


def cache_path(cache_dir: Path, sample: Sample, backbone_id: str = BACKBONE_ID) -> Path:
    """Where one image's features live; a changed file or backbone gets a new name."""
    stat = sample.path.stat()
    ident = f"{backbone_id}|{sample.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    digest = hashlib.sha1(ident.encode("utf-8")).hexdigest()
    return cache_dir / backbone_id / digest[:2] / f"{digest}.npy"


def embed_views(session: ort.InferenceSession, images: list[np.ndarray], spec: InputSpec) -> np.ndarray:
    """[n, 2, D] features of the images and their horizontal mirrors, in one batch of ``session``."""
    flipped = [np.ascontiguousarray(img[:, ::-1]) for img in images]
    batch = to_model_input(images + flipped, spec)
    (features,) = session.run(None, {"image": batch})
    n = len(images)
    return np.stack([features[:n], features[n:]], axis=1).astype(np.float32)


Embed = Callable[[ort.InferenceSession, list[np.ndarray], InputSpec], np.ndarray]


@dataclass(frozen=True)
class Backbone:
    """Which network makes the features: its cache identity, how to open it, how to embed a batch.

    The pretrained one (the default) flips images itself; a served model's backbone mirrors
    inside its graph (``trainer.fit.served_backbone``).
    """

    ident: str
    open: Callable[[Path], ort.InferenceSession]
    embed: Embed


PRETRAINED = Backbone(BACKBONE_ID, backbone_session, embed_views)


def extract(
    samples: Sequence[Sample],
    cache_dir: Path = DEFAULT_CACHE_DIR,
    *,
    batch_size: int = 32,
    workers: int = 2,
    spec: InputSpec | None = None,
    backbone: Backbone = PRETRAINED,
) -> FeatureSet:
    """Features for every sample, from the cache where possible; undecodable images are skipped."""
    spec = spec or InputSpec()
    paths = [cache_path(cache_dir, s, backbone.ident) for s in samples]
    todo = [i for i, p in enumerate(paths) if not p.is_file()]
    log.info("features: %d cached, %d to extract", len(samples) - len(todo), len(todo))
    bad: set[int] = set()
    if todo:
        session = backbone.open(cache_dir)
        with (
            ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
            tqdm(total=len(todo), desc="features", unit="img") as bar,
        ):
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                images = list(pool.map(lambda i: load_rgb_or_none(samples[i].path, spec), chunk))
                good = [(i, img) for i, img in zip(chunk, images, strict=True) if img is not None]
                bad.update(i for i, img in zip(chunk, images, strict=True) if img is None)
                if good:
                    feats = backbone.embed(session, [img for _, img in good], spec)
                    for (i, _), feat in zip(good, feats, strict=True):
                        paths[i].parent.mkdir(parents=True, exist_ok=True)
                        np.save(paths[i], feat)
                bar.update(len(chunk))
    kept = [i for i in range(len(samples)) if i not in bad]
    features = np.stack([np.load(paths[i]) for i in kept]) if kept else np.zeros((0, 2, FEATURE_DIM))
    return FeatureSet([samples[i] for i in kept], features.astype(np.float32), [samples[i] for i in bad])
