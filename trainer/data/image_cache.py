"""Decode every training image once into a uint8 array on disk (a numpy memmap under ``.cache/``).

Fine-tuning reads each image once per epoch; decoding JPEGs every time would cost as much as the
forward pass on two cores. Images are decoded with the serving runtime's ``decode_frame`` and
``resize_for_model`` (the worker's) at the model's input size, so an un-augmented cached image is exactly the
pixels the served model sees. The cache file name hashes the files' paths, sizes and mtimes and
the input spec, so a changed dataset gets a new cache instead of stale pixels.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sortline.manifest import InputSpec
from trainer.data.dataset import Sample
from trainer.data.images import load_rgb_or_none

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path(".cache/images")


@dataclass(frozen=True)
class ImageSet:
    """Decoded images [N, size, size, 3] RGB uint8 for ``samples`` (undecodable files left out)."""

    samples: list[Sample]
    images: np.ndarray
    skipped: list[Sample]


def cache_key(samples: Sequence[Sample], spec: InputSpec) -> str:
    """Identity of a set of files at an input spec."""
    digest = hashlib.sha1(spec.model_dump_json().encode())
    for sample in samples:
        stat = sample.path.stat()
        digest.update(f"{sample.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _fill(path: Path, samples: Sequence[Sample], spec: InputSpec, workers: int) -> list[int]:
    """Decode into a new memmap at ``path``; returns indices of undecodable files (left black)."""
    size = spec.size
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(len(samples), size, size, 3))
    bad: list[int] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        images = pool.map(lambda s: load_rgb_or_none(s.path, spec), samples)
        for i, image in enumerate(tqdm(images, total=len(samples), desc="decode", unit="img")):
            if image is None:
                bad.append(i)
            else:
                array[i] = image
    array.flush()
    return bad


def load(
    samples: Sequence[Sample],
    spec: InputSpec,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    *,
    workers: int = 2,
) -> ImageSet:
    """The decoded images of ``samples``, from the cache when it exists (memory-mapped, read-only)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(samples, spec)
    array_path = cache_dir / f"images-{key}.npy"
    bad_path = cache_dir / f"images-{key}.skipped.json"
    if not (array_path.is_file() and bad_path.is_file()):
        log.info("decoding %d images into %s", len(samples), array_path)
        tmp = array_path.with_suffix(".tmp.npy")
        bad = _fill(tmp, samples, spec, workers)
        tmp.replace(array_path)
        bad_path.write_text(json.dumps(bad))
    bad = set(json.loads(bad_path.read_text()))
    images = np.load(array_path, mmap_mode="r")
    kept = [i for i in range(len(samples)) if i not in bad]
    return ImageSet(
        samples=[samples[i] for i in kept],
        images=images if not bad else images[kept],
        skipped=[samples[i] for i in sorted(bad)],
    )
