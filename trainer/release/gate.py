"""The promotion gate: a candidate is scored beside the serving model on a labelled gate set, and
refused when it is worse by more than a margin on material accuracy, stage 1, or any bin's purity.

Both models are scored as workers serve them (the variant a CPU worker picks), on the same images,
in the same run, so the comparison holds whatever the machine's speed. A bin's purity is compared
only where both models put at least ``min_bin_items`` items in it: a purity from three items is a
coin toss, not a verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.data.dataset import Sample
from trainer.evaluation.metrics import compute_metrics
from trainer.evaluation.scoring import score


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    reasons: list[str]  # why it was refused (empty when it passed)
    candidate: dict[str, Any]
    current: dict[str, Any]


def figures_of(model_dir: Path, samples: Sequence[Sample], workers: int) -> dict[str, Any]:
    from sortline_runtime.model import CascadeModel

    scored = score(CascadeModel.load(model_dir, variant="auto"), samples, workers=workers)
    labels = [s.label for s in scored.samples]
    return compute_metrics(labels, scored.p_organic, scored.material_probs, scored.decisions)


def judge(
    candidate: dict[str, Any], current: dict[str, Any], margin: float, min_bin_items: int
) -> GateVerdict:
    reasons = []
    for name, key in (("material accuracy", "recyclable_material_accuracy"), ("stage 1", "stage1_accuracy")):
        new, old = candidate.get(key), current.get(key)
        if new is not None and old is not None and new < old - margin:
            reasons.append(f"{name} {new:.2%} against {old:.2%} (margin {margin:.2%})")
    for bin_name, new in candidate["per_bin"].items():
        old = current["per_bin"][bin_name]
        if min(new["predicted"], old["predicted"]) < min_bin_items:
            continue
        if new["purity"] is not None and old["purity"] is not None and new["purity"] < old["purity"] - margin:
            reasons.append(f"{bin_name} purity {new['purity']:.2%} against {old['purity']:.2%}")
    return GateVerdict(not reasons, reasons, candidate, current)


def gate(
    candidate_dir: Path,
    current_dir: Path,
    samples: Sequence[Sample],
    margin: float,
    min_bin_items: int = 20,
    workers: int = 2,
) -> GateVerdict:
    return judge(figures_of(candidate_dir, samples, workers), figures_of(current_dir, samples, workers),
                 margin, min_bin_items)  # fmt: skip


def verdict_table(verdict: GateVerdict) -> str:
    """Both models' figures side by side, for the person promoting."""
    rows = [("figure", "candidate", "current")]
    for name, key in (
        ("material accuracy", "recyclable_material_accuracy"),
        ("stage 1", "stage1_accuracy"),
        ("right bin", "bin_accuracy"),
        ("sortable to residual", "sortable_residual_fraction"),
    ):
        rows.append((name, _pct(verdict.candidate.get(key)), _pct(verdict.current.get(key))))
    for bin_name, new in verdict.candidate["per_bin"].items():
        old = verdict.current["per_bin"][bin_name]
        rows.append((f"{bin_name} purity (items)", f"{_pct(new['purity'])} ({new['predicted']})",
                     f"{_pct(old['purity'])} ({old['predicted']})"))  # fmt: skip
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b:>14}  {c:>14}" for a, b, c in rows)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"
