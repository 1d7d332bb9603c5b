"""Experiment (run on `454c8007`): would one abstain threshold per bin beat the single shared one?

The shipped cascade has one material-confidence threshold, set by the worst bin (metal needs 0.9995).
Per-bin thresholds would let the other bins take more items at the same purity. This scores the
served model on the calibration subset and the validation split, then compares on validation:
the shared threshold, per-bin thresholds chosen on the calibration subset, per-bin thresholds chosen
on calibration + half of validation (scored on the other half, both ways, three shuffles), and
per-bin thresholds chosen on validation itself (an upper bound, not an honest figure).

    .venv/bin/python docs/experiments/per_bin_thresholds.py [--model models/default]

Needs the labelled data of ``make train`` (``DATA`` below); takes about 30 s.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from sortline.labels import MATERIALS, ORGANIC, RECYCLABLE_MATERIALS, RESIDUAL
from sortline_runtime.model import CascadeModel
from trainer.evaluation.scoring import score
from trainer.pipelines.train import make_splits
from trainer.release.calibrate import THRESHOLD_GRID

DATA = [Path("../shared/datasets/trashnet"), Path("../shared/datasets/garbage12")]
BINS = [*RECYCLABLE_MATERIALS, ORGANIC]


def bins_of(p_organic, probs, organic: float, per_bin: dict[str, float]) -> np.ndarray:
    """The cascade of ``sortline.cascade.decide`` with one threshold per recyclable bin."""
    material = np.array(MATERIALS)[probs.argmax(1)]
    confident = probs.max(1) >= np.array([per_bin.get(m, 1.1) for m in material])
    recyclable = np.isin(material, RECYCLABLE_MATERIALS) & confident
    return np.where(p_organic >= organic, ORGANIC, np.where(recyclable, material, RESIDUAL))


def figures(labels, bins) -> dict[str, float]:
    right = (bins == labels) | ((bins == RESIDUAL) & (labels == "trash"))
    sortable = labels != "trash"
    purities = [np.mean(labels[bins == b] == b) for b in BINS if np.any(bins == b)]
    return {
        "right_bin": float(right.mean()),
        "sortable_to_residual": float(np.mean(bins[sortable] == RESIDUAL)),
        "worst_purity": float(min(purities)),
    }


def per_bin_thresholds(labels, p_organic, probs, organic: float, target: float) -> dict[str, float]:
    """For each bin, the smallest threshold at which its items are ``target`` pure."""
    chosen = {}
    for material in RECYCLABLE_MATERIALS:
        index = MATERIALS.index(material)
        mine = (p_organic < organic) & (probs.argmax(1) == index)
        confidence, correct = probs[mine, index], labels[mine] == material
        reaching = [
            t for t in THRESHOLD_GRID if np.any(confidence >= t) and correct[confidence >= t].mean() >= target
        ]
        chosen[material] = float(reaching[0]) if reaching else 1.0
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("models/default"))
    parser.add_argument("--target", type=float, default=0.97, help="Per-bin purity to reach (0.97).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    model = CascadeModel.load(args.model)
    organic, shared = model.manifest.thresholds.organic, model.manifest.thresholds.material_min_confidence
    splits = make_splits(DATA, model.manifest.training.val_fraction, model.manifest.training.calib_fraction)
    scored = {}
    for name in ("calib", "val"):
        result = score(model, getattr(splits, name), workers=2)
        labels = np.array([s.label for s in result.samples])
        scored[name] = (labels, np.asarray(result.p_organic), np.asarray(result.material_probs))
    labels, p, probs = scored["val"]
    rows = [
        (
            "shared threshold (shipped)",
            figures(labels, bins_of(p, probs, organic, dict.fromkeys(BINS, shared))),
        )
    ]
    on_calib = per_bin_thresholds(*scored["calib"], organic, args.target)
    rows.append(("per bin, chosen on calibration", figures(labels, bins_of(p, probs, organic, on_calib))))
    rng = np.random.default_rng(0)
    for shuffle in range(3):
        order = rng.permutation(len(labels))
        halves = (order[: len(order) // 2], order[len(order) // 2 :])
        for chosen_on, scored_on in (halves, halves[::-1]):
            pool = [
                np.concatenate([c, v[chosen_on]]) for c, v in zip(scored["calib"], scored["val"], strict=True)
            ]
            thresholds = per_bin_thresholds(*pool, organic, args.target)
            got = figures(labels[scored_on], bins_of(p[scored_on], probs[scored_on], organic, thresholds))
            rows.append((f"per bin, calibration + half of validation ({shuffle})", got))
    on_val = per_bin_thresholds(labels, p, probs, organic, args.target)
    rows.append(
        ("per bin, chosen on validation itself (bound)", figures(labels, bins_of(p, probs, organic, on_val)))
    )
    print(f"{'on validation':55} right bin  sortable->residual  worst purity")
    for name, row in rows:
        right, residual, purity = row["right_bin"], row["sortable_to_residual"], row["worst_purity"]
        print(f"{name:55} {right:8.3f}  {residual:17.3f}  {purity:12.4f}")


if __name__ == "__main__":
    main()
