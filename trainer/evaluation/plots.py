"""PNG plots for the evaluation report (matplotlib, Agg backend, small files)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

DPI = 90


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def confusion_png(
    matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str], title: str, path: Path
) -> Path:
    """Counts with row-normalised shading, so scarce classes read as clearly as common ones."""
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(cols), 0.8 + 0.6 * len(rows)))
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(
                j, i, str(count), ha="center", va="center", color="white" if shares[i, j] > 0.5 else "black"
            )
    ax.set_xticks(range(len(cols)), cols, rotation=40, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("decided")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _save(fig, path)


def roc_pr_png(curve: dict[str, Any], operating: tuple[float, float, float, float], path: Path) -> Path:
    """Stage-1 ROC and precision-recall, with the calibrated operating point marked."""
    fpr_op, tpr_op, rec_op, prec_op = operating
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(8, 3.6))
    roc.plot(curve["fpr"], curve["tpr"])
    roc.plot([fpr_op], [tpr_op], "o", color="C3", label="operating point")
    roc.set(
        xlabel="false positive rate", ylabel="organic recall", title=f"stage 1 ROC (AUC {curve['auc']:.4f})"
    )
    roc.legend(loc="lower right")
    pr.plot(curve["recall"], curve["precision"])
    pr.plot([rec_op], [prec_op], "o", color="C3")
    pr.axhline(0.97, color="grey", linestyle="--", linewidth=0.8)
    pr.set(
        xlabel="organic recovery (recall)",
        ylabel="organic purity (precision)",
        title="stage 1 precision-recall",
    )
    pr.set_ylim(max(0.0, float(np.min(curve["precision"])) - 0.02), 1.005)
    return _save(fig, path)


def purity_recovery_png(
    sweep: dict[str, Any], organic: dict[str, np.ndarray] | None, chosen: float, path: Path
) -> Path:
    """Purity vs recovery per bin as the abstain threshold sweeps; dots at the chosen threshold.

    ``organic`` is None when the data holds no organic items: no stage-1 curve rather than a flat one.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    index = int(np.argmin(np.abs(np.asarray(sweep["thresholds"]) - chosen)))
    for k, (name, curve) in enumerate(sweep["bins"].items()):
        pairs = [(r, p) for r, p in zip(curve["recovery"], curve["purity"], strict=True) if p is not None]
        if pairs:
            ax.plot([r for r, _ in pairs], [p for _, p in pairs], color=f"C{k}", label=name)
        if curve["purity"][index] is not None:
            ax.plot([curve["recovery"][index]], [curve["purity"][index]], "o", color=f"C{k}")
    if organic is not None:
        ax.plot(organic["recovery"], organic["purity"], color="C5", linestyle=":", label="organic (stage 1)")
    ax.axhline(0.97, color="grey", linestyle="--", linewidth=0.8, label="97% purity")
    ax.set(xlabel="recovery", ylabel="purity", title="purity vs recovery per bin (dots: operating point)")
    ax.set_ylim(0.8, 1.005)
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def mistakes_png(images: Sequence[np.ndarray], captions: Sequence[str], path: Path, columns: int = 4) -> Path:
    """A grid of thumbnails with 'label -> bin (confidence)' captions."""
    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.9 * columns, 2.1 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, captions, strict=False):
        ax.imshow(image)
        ax.set_title(caption, fontsize=7)
    _save(fig, path)
    return _palette(path)


def _palette(path: Path) -> Path:
    """Re-save a photo grid with a 256-colour palette: a third of the bytes, same look at this size."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(256)
    small.save(path, optimize=True)
    return path
