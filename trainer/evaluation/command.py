"""``trainer evaluate``: score a model directory and report figures as a table, JSON and JSON lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sortline.labels import MATERIALS
from sortline.manifest import load_manifest
from sortline_runtime.model import CascadeModel
from trainer.data.splits import DEFAULT_VAL_FRACTION, recorded_fraction
from trainer.evaluation import inputs
from trainer.evaluation.metrics import compute_metrics
from trainer.evaluation.scoring import ScoredSet, score
from trainer.settings import EvaluateSettings


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_table(metrics: dict[str, Any], console: Console) -> None:
    """The figures for people: headline accuracies, then purity and recovery per bin."""
    console.print(
        f"model {metrics['model_version']}, file {metrics['scored_file']} ({metrics['variant']}), "
        f"split {metrics['split']}, {metrics['n_images']} images"
    )
    for name in (
        "stage1_accuracy",
        "material_accuracy",
        "recyclable_material_accuracy",
        "bin_accuracy",
        "residual_fraction",
        "sortable_residual_fraction",
        "low_confidence_fraction",
    ):
        console.print(f"  {name:<30} {_fmt(metrics[name])}")
    table = Table(title="per bin")
    for column in ("bin", "predicted", "expected", "purity", "recovery"):
        table.add_column(column, justify="left" if column == "bin" else "right")
    for name, fig in metrics["per_bin"].items():
        table.add_row(
            name, str(fig["predicted"]), str(fig["expected"]), _fmt(fig["purity"]), _fmt(fig["recovery"])
        )
    console.print(table)


def write_predictions(scored: ScoredSet, path: Path) -> None:
    """One JSON object per image: what it was, where it went and why."""
    with path.open("w") as handle:
        for sample, p, probs, decision in zip(
            scored.samples, scored.p_organic, scored.material_probs, scored.decisions, strict=True
        ):
            row = {
                "path": str(sample.path),
                "label": sample.label,
                "bin": decision.bin,
                "confidence": round(decision.confidence, 6),
                "p_organic": round(float(p), 6),
                "material": decision.material,
                "material_probs": {m: round(float(v), 6) for m, v in zip(MATERIALS, probs, strict=True)},
                "residual_reason": None
                if decision.residual_reason is None
                else str(decision.residual_reason),
            }
            handle.write(json.dumps(row) + "\n")


def load_model(model_dir: Path, variant: str) -> CascadeModel:
    """The file a worker would serve with ``--variant`` (auto: int8 on CPUs), verified by its sha256."""
    return CascadeModel.load(model_dir, variant=variant)


def evaluate_command(settings: EvaluateSettings) -> int:
    """Run the model over the chosen split and print the figures (and write a report if asked).

    The data is checked first and the model loaded last: a wrong folder costs no model load.
    """
    rules = inputs.LabelRules(settings.map, frozenset(settings.ignore))
    samples = inputs.checked_samples(settings.data, rules)
    manifest = load_manifest(settings.model, verify=False)  # the split's share only; verified below
    fraction = settings.val_fraction
    if fraction is None:
        fraction = recorded_fraction(manifest, "val_fraction", DEFAULT_VAL_FRACTION)
    samples = inputs.chosen_split(samples, settings.split, fraction)
    model = load_model(settings.model, settings.variant)
    scored = score(model, samples, batch_size=settings.batch_size, workers=settings.workers)
    labels = [s.label for s in scored.samples]
    metrics = {
        "model_version": model.manifest.version,
        "scored_file": inputs.scored_file(model),
        "variant": model.variant or "main",
        "served_files": inputs.served_files(model.manifest),
        "label_folders": {"mapped": settings.map, "ignored": settings.ignore},
        "split": settings.split,
        "val_fraction": fraction if settings.split == "val" else None,
        "thresholds": model.manifest.thresholds.model_dump(),
        "skipped_undecodable": len(scored.skipped),
        **compute_metrics(labels, scored.p_organic, scored.material_probs, scored.decisions),
    }
    if settings.loso:
        from trainer.evaluation.loso import leave_one_source_out

        metrics["leave_one_source_out"] = leave_one_source_out(
            inputs.checked_samples(settings.data, rules), workers=settings.workers
        )
    if settings.predictions:
        write_predictions(scored, settings.predictions)
    if settings.report:
        from trainer.evaluation.report import write_report  # matplotlib only when a report is asked for

        write_report(settings.report, scored, metrics, model.manifest, min_bin_items=settings.min_bin_items)
    if settings.json_output:
        sys.stdout.write(json.dumps(metrics, indent=2) + "\n")
    else:
        render_table(metrics, Console())
    return 0
