"""Scan the labelled-data layout ``DIR/<label>/*.jpg`` and split it deterministically.

The validation split depends only on each file's path relative to its data folder's parent
(``<dataset-folder-name>/<label>/<file>``), hashed with sha1, so every machine, every run and
``trainer evaluate --split val`` agree on which images were held out.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sortline.labels import DATA_LABELS

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})


class DataLayoutError(ValueError):
    """A data folder is missing or holds no label folders; the CLI reports it and exits 2."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One labelled image. ``key`` is ``<dataset-folder-name>/<label>/<file>``."""

    path: Path
    label: str
    key: str


def label_folders(data_dir: Path) -> list[Path]:
    """The folders of a data folder, in a stable order; a missing data folder is an error."""
    if not data_dir.is_dir():
        raise DataLayoutError(f"data folder {data_dir} does not exist or is not a folder")
    return sorted(p for p in data_dir.iterdir() if p.is_dir())


def images_of(data_dir: Path, label_dir: Path, label: str) -> list[Sample]:
    """A label folder's images as ``label``, keyed by where they are (the split hashes the key)."""
    prefix = f"{data_dir.resolve().name}/{label_dir.name}"
    files = sorted(f for f in label_dir.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    return [Sample(path=file, label=label, key=f"{prefix}/{file.name}") for file in files]


def _scan_one(data_dir: Path) -> list[Sample]:
    """Images of one data folder; unknown label folders are skipped with a warning."""
    samples: list[Sample] = []
    found_label = False
    for label_dir in label_folders(data_dir):
        if label_dir.name not in DATA_LABELS:
            log.warning(
                "skipping %s: %r is not a label (%s)", label_dir, label_dir.name, ", ".join(DATA_LABELS)
            )
            continue
        found_label = True
        samples += images_of(data_dir, label_dir, label_dir.name)
    if not found_label:
        raise DataLayoutError(
            f"data folder {data_dir} has no label folders; expected {data_dir}/<label>/*.jpg "
            f"with label one of {', '.join(DATA_LABELS)}"
        )
    return samples


def scan(data_dirs: Iterable[Path]) -> list[Sample]:
    """All labelled images under the given folders, in a stable order."""
    samples = [sample for data_dir in data_dirs for sample in _scan_one(Path(data_dir))]
    if not samples:
        raise DataLayoutError("the data folders hold no images (.jpg, .jpeg, .png)")
    return samples


def split_hash(key: str, salt: str = "") -> str:
    """Stable per-file hash that orders files for a split; ``salt`` gives an independent order."""
    return hashlib.sha1((salt + key).encode("utf-8")).hexdigest()


def validation_count(n: int, fraction: float) -> int:
    """How many of a label's ``n`` images go to validation: at least one when there are two or more."""
    if n < 2 or fraction <= 0.0:
        return 0
    return min(n - 1, max(1, round(n * fraction)))


def split(samples: Sequence[Sample], fraction: float, salt: str = "") -> tuple[list[Sample], list[Sample]]:
    """(train, validation), stratified by label and source folder.

    Within each ``<dataset-folder-name>/<label>`` group the files with the smallest hashes go to
    validation, so both sources are represented in every label's validation share. A ``salt``
    (e.g. ``"calibration/"``) carves a further, independent held-out part from the training side.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be within [0, 1), got {fraction}")
    by_label: dict[str, list[Sample]] = {}
    for sample in samples:
        by_label.setdefault(sample.key.rsplit("/", 1)[0], []).append(sample)
    val_keys: set[str] = set()
    for group in by_label.values():
        ranked = sorted(group, key=lambda s: split_hash(s.key, salt))
        val_keys.update(s.key for s in ranked[: validation_count(len(group), fraction)])
    train = [s for s in samples if s.key not in val_keys]
    val = [s for s in samples if s.key in val_keys]
    return train, val


def label_counts(samples: Iterable[Sample]) -> dict[str, int]:
    """Images per label, in the contract's label order."""
    counts = Counter(s.label for s in samples)
    return {label: counts[label] for label in DATA_LABELS if counts[label]}
