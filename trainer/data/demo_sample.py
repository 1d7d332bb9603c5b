"""A small, reproducible demo sample drawn only from the validation split.

Images are taken round-robin from each data folder (smallest split hash first), re-encoded as
JPEG quality 90 with the long side at most 384 px, and named ``<dataset>-<original stem>.jpg``
so their provenance stays visible. A README with sources and licences is written alongside.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import chain, zip_longest
from pathlib import Path

import cv2

from sortline.labels import MATERIALS, ORGANIC
from trainer.data.dataset import Sample, scan, split, split_hash

log = logging.getLogger(__name__)

LONG_SIDE = 384
JPEG_QUALITY = 90

README = """# Demo sample

{total} images in `<label>/*.jpg` ({per_class} per material class, {organic} organic), written by

    {command}

They come only from the trainer's deterministic **validation** split (never trained on), mixed
from both data folders (organic only from garbage12: TrashNet has none), re-encoded as JPEG
quality {quality} with the long side at most {long_side} px.
File names are `<dataset>-<original file stem>.jpg`.

## Sources and licences

- `trashnet-*`: TrashNet, Gary Thung and Mindy Yang (Stanford CS229, 2016),
  github.com/garythung/trashnet, MIT licence.
- `garbage12-*`: Kaggle "garbage classification" (12 classes) by mostafaabla,
  ODbL-1.0 as listed on its Kaggle page; `biological` renamed `organic`.
"""


def pick(val: Sequence[Sample], label: str, count: int) -> list[Sample]:
    """``count`` validation images of a label, alternating between data folders."""
    by_source: dict[str, list[Sample]] = {}
    for sample in sorted((s for s in val if s.label == label), key=lambda s: split_hash(s.key)):
        by_source.setdefault(sample.key.split("/", 1)[0], []).append(sample)
    interleaved = [s for s in chain.from_iterable(zip_longest(*by_source.values())) if s is not None]
    if len(interleaved) < count:
        log.warning("only %d validation images of %s, wanted %d", len(interleaved), label, count)
    return interleaved[:count]


def reencode(source: Path, target: Path) -> None:
    """Write ``source`` as a JPEG with the long side at most LONG_SIDE px."""
    image = cv2.imread(str(source), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot decode {source}")
    scale = LONG_SIDE / max(image.shape[:2])
    if scale < 1.0:
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    if not cv2.imwrite(str(target), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise OSError(f"cannot write {target}")


def write_sample(
    data_dirs: Sequence[Path], out: Path, *, per_class: int, organic: int, val_fraction: float, command: str
) -> int:
    """Write the demo sample and its README; returns the number of images written."""
    _, val = split(scan(data_dirs), val_fraction)
    written = 0
    for label, count in [*((m, per_class) for m in MATERIALS), (ORGANIC, organic)]:
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.jpg"):
            old.unlink()
        for sample in pick(val, label, count):
            dataset_name = sample.key.split("/", 1)[0]
            reencode(sample.path, folder / f"{dataset_name}-{sample.path.stem}.jpg")
            written += 1
    text = README.format(
        total=written,
        per_class=per_class,
        organic=organic,
        command=command,
        quality=JPEG_QUALITY,
        long_side=LONG_SIDE,
    )
    (out / "README.md").write_text(text)
    return written
