"""Build the belt generator's cut-outs: labelled waste photos freed from their backgrounds.

Run once by hand (the result is committed in ``sortline_dev/belt/cutouts/``; nothing reads
``/work/shared`` at run time):

    PYTHONPATH=. python scripts/make_belt_cutouts.py --clean \
        --data ../shared/datasets/trashnet ../shared/datasets/garbage12 --skip KEY...

(cutouts/README.md has the exact command, with the keys skipped after looking at the masks).

Only images of the trainer's deterministic **validation** split are used (``trainer.dataset.split``
with the trainer's default fraction 0.15), so a demo or bench clip never shows a training image.
TrashNet photos lie on a white sheet: GrabCut, seeded with "probably background" for the bright,
unsaturated pixels joined to the image border, separates the item; the mask is cleaned (largest
component, holes filled, opened), its edge feathered, and the cut-out saved as an alpha PNG with
the long side at most ``--long-side`` px. Organic items come from garbage12 (TrashNet has none),
whose backgrounds vary: the same recipe is applied and only masks that pass the quality checks are
kept. The chosen file names are written to ``cutouts/manifest.json`` and listed in its README.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

try:  # the trainer regrouped by job keeps the split in trainer/data/
    from trainer.data.dataset import Sample, scan, split, split_hash
except ImportError:
    from trainer.dataset import Sample, scan, split, split_hash

log = logging.getLogger("make_belt_cutouts")

OUT = Path(__file__).resolve().parent.parent / "sortline_dev" / "belt" / "cutouts"
VAL_FRACTION = 0.15  # trainer train's default --val-fraction (make train uses it)
CLASSES = ("cardboard", "glass", "metal", "paper", "plastic", "trash", "organic")
SOURCE_OF = {"organic": "garbage12"}  # every other class comes from TrashNet's white-sheet photos


def background_seed(image: np.ndarray) -> np.ndarray:
    """The sheet the item was photographed on: flood-filled from the border along smooth shading.

    A neighbour-to-neighbour flood (not a fixed colour range) follows the sheet's light gradient
    and stops at the item's edge.
    """
    smooth = cv2.GaussianBlur(image, (5, 5), 0)
    h, w = smooth.shape[:2]
    flood = np.zeros((h + 2, w + 2), np.uint8)
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | (255 << 8)
    step = max(1, min(h, w) // 16)
    border = [(x, 0) for x in range(0, w, step)] + [(x, h - 1) for x in range(0, w, step)]
    border += [(0, y) for y in range(0, h, step)] + [(w - 1, y) for y in range(0, h, step)]
    for point in border:
        if not flood[point[1] + 1, point[0] + 1]:
            cv2.floodFill(smooth, flood, point, 0, (3, 3, 3), (3, 3, 3), flags)
    return flood[1:-1, 1:-1] > 0


def segment(image: np.ndarray) -> np.ndarray:
    """Foreground mask (uint8 0/255) of the one item in the photo, by GrabCut."""
    h, w = image.shape[:2]
    mask = np.full((h, w), cv2.GC_PR_FGD, np.uint8)
    mask[background_seed(image)] = cv2.GC_PR_BGD
    border = max(2, min(h, w) // 40)
    mask[:border], mask[-border:], mask[:, :border], mask[:, -border:] = (cv2.GC_BGD,) * 4
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's colour models start from k-means: seeded, the cut-outs repeat exactly
    cv2.grabCut(image, mask, None, bgd, fgd, 5, cv2.GC_INIT_WITH_MASK)
    return clean_mask(np.where((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), 255, 0).astype(np.uint8))


def clean_mask(mask: np.ndarray) -> np.ndarray:
    """Largest component, holes filled, specks and thin spurs opened away."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros_like(mask)
    if contours:
        cv2.drawContours(out, [max(contours, key=cv2.contourArea)], -1, 255, cv2.FILLED)
    return out


def acceptable(mask: np.ndarray) -> bool:
    """A plausible single item: neither a speck nor the whole photo, not cut by the photo's edge."""
    area = np.count_nonzero(mask) / mask.size
    edge = np.concatenate([mask[1], mask[-2], mask[:, 1], mask[:, -2]])
    return 0.06 < area < 0.75 and np.count_nonzero(edge) / edge.size < 0.05


def cutout(image: np.ndarray, mask: np.ndarray, long_side: int) -> np.ndarray:
    """BGRA crop around the mask, edge feathered by one pixel, long side at most ``long_side``."""
    x, y, w, h = cv2.boundingRect(mask)
    alpha = cv2.GaussianBlur(mask, (3, 3), 0)[y : y + h, x : x + w]
    bgra = np.dstack([image[y : y + h, x : x + w], alpha])
    scale = min(1.0, long_side / max(w, h))
    if scale < 1.0:
        bgra = cv2.resize(bgra, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return bgra


def validation_samples(val: list[Sample], label: str) -> list[Sample]:
    """The label's validation images from its source folder, smallest split hash first."""
    wanted = SOURCE_OF.get(label, "trashnet")
    chosen = [s for s in val if s.label == label and s.key.startswith(wanted + "/")]
    return sorted(chosen, key=lambda s: split_hash(s.key))


def build(data: list[Path], per_class: int, long_side: int, skip: set[str]) -> dict[str, list[str]]:
    """Write up to ``per_class`` cut-outs per class; returns the source keys chosen per class."""
    _, val = split(scan(data), VAL_FRACTION)
    val = [s for s in val if s.key not in skip]
    chosen: dict[str, list[str]] = {}
    for label in tqdm(CLASSES, desc="classes"):
        (OUT / label).mkdir(parents=True, exist_ok=True)
        chosen[label] = []
        for sample in validation_samples(val, label):
            if len(chosen[label]) == per_class:
                break
            image = cv2.imread(str(sample.path), cv2.IMREAD_COLOR)
            mask = segment(image)
            if not acceptable(mask):
                log.info("rejected %s: mask fails the checks", sample.key)
                continue
            dataset = sample.key.split("/", 1)[0]
            name = f"{dataset}-{sample.path.stem}.png"
            cv2.imwrite(
                str(OUT / label / name), cutout(image, mask, long_side), [cv2.IMWRITE_PNG_COMPRESSION, 9]
            )
            chosen[label].append(sample.key)
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="trashnet and garbage12 folders")
    parser.add_argument("--per-class", type=int, default=10, help="cut-outs per class (default 10)")
    parser.add_argument("--long-side", type=int, default=200, help="longest side in px (default 200)")
    parser.add_argument("--skip", nargs="*", default=[], help="source keys to leave out (bad masks seen)")
    parser.add_argument("--clean", action="store_true", help="remove the class folders first")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.clean:
        for label in CLASSES:
            for old in (OUT / label).glob("*.png"):
                old.unlink()
    chosen = build(args.data, args.per_class, args.long_side, set(args.skip))
    manifest = {"val_fraction": VAL_FRACTION, "long_side": args.long_side, "sources": chosen}
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
