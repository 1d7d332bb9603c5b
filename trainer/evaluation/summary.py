"""summary.md of an evaluation report: the figures a plant engineer asks for, in plain words."""

from __future__ import annotations

from typing import Any

from sortline.manifest import ModelManifest


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _check(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _targets(report: dict[str, Any]) -> list[str]:
    t = report["targets"]
    purities = [
        f["purity"]
        for name, f in report["per_bin"].items()
        if name not in ("residual", "hazard") and f["purity"] is not None
    ]
    worst = min(purities) if purities else None
    residual = report["residual_fraction"] or 0.0
    sortable = report.get("sortable_residual_fraction") or 0.0
    material = report.get("recyclable_material_accuracy") or 0.0
    return [
        "| target | goal | here | |",
        "|---|---|---|---|",
        f"| material accuracy (the five recyclables) | >= {_pct(t['recyclable_material_accuracy'])} | "
        f"{_pct(material)} | {_check(material >= t['recyclable_material_accuracy'])} |",
        f"| organic vs not (stage 1) | >= {_pct(t['stage1_accuracy'])} | {_pct(report['stage1_accuracy'])} | "
        f"{_check((report['stage1_accuracy'] or 0) >= t['stage1_accuracy'])} |",
        f"| worst bin purity | >= {_pct(t['bin_purity'])} | {_pct(worst)} | "
        f"{_check((worst or 0) >= t['bin_purity'])} |",
        f"| sent to residual (incl. trash) | <= {_pct(t['residual_fraction'])} | {_pct(residual)} | "
        f"{_check(residual <= t['residual_fraction'])} |",
        f"| sortable items sent to residual (trash excluded) | <= {_pct(t['residual_fraction'])} | "
        f"{_pct(sortable)} | {_check(sortable <= t['residual_fraction'])} |",
        *_hazard_targets(report),
    ]


def _hazard_targets(report: dict[str, Any]) -> list[str]:
    """Battery recall and hazard-bin purity, where the data has batteries (the hazard bin's own target)."""
    t, recall, purity = report["targets"], report.get("hazard_recall"), report.get("hazard_purity")
    if recall is None or "hazard_recall" not in t:
        return []
    return [
        f"| batteries caught (hazard recall) | >= {_pct(t['hazard_recall'])} | {_pct(recall)} | "
        f"{_check(recall >= t['hazard_recall'])} |",
        f"| hazard bin purity | >= {_pct(t['hazard_purity'])} | {_pct(purity)} | "
        f"{_check((purity or 0) >= t['hazard_purity'])} |",
    ]


def _bins(report: dict[str, Any]) -> list[str]:
    lines = [
        "| bin | items sent there | items that belong there | purity | recovery |",
        "|---|---|---|---|---|",
    ]
    for name, f in report["per_bin"].items():
        lines.append(
            f"| {name} | {f['predicted']} | {f['expected']} | {_pct(f['purity'])} | {_pct(f['recovery'])} |"
        )
    return lines


VARIANT_ROLES = {"int8": "for CPU workers", "fp16": "for GPU workers"}


def _variants(report: dict[str, Any]) -> list[str]:
    """One paragraph per variant the manifest measured: accuracy cost, agreement, kept or not."""
    lines: list[str] = []
    for name, role in VARIANT_ROLES.items():
        figures = (report.get("variants") or {}).get(name)
        if not figures:
            continue
        kept = "committed next to the fp32 model" if figures.get("kept") else "not committed (costs too much)"
        speed = figures.get("speed_img_per_s")
        lines += [
            f"## {name} variant ({role})",
            "",
            f"Material accuracy {_pct(figures['validation']['material_accuracy'])} "
            f"({100 * figures['accuracy_delta']:+.2f} points vs fp32), bin agreement with fp32 "
            f"{_pct(figures['vs_fp32']['bin_agreement'])}; {kept}."
            + (
                " Speed on this machine (ONNX Runtime, CPU): "
                + ", ".join(f"{k} {v} img/s" for k, v in speed.items())
                + "."
                if speed
                else ""
            ),
            "",
        ]
    return lines


def render_summary(report: dict[str, Any], manifest: ModelManifest) -> str:
    """Markdown: what was measured, against the targets, per bin, and the pictures."""
    th = report["thresholds"]
    lines = [
        f"# Model report: {report['model_version']}",
        "",
        f"{report['n_images']} images of the `{report['split']}` split, scored by the served ONNX model "
        "through the worker's own preprocessing. Thresholds: an item goes to **organic** when p_organic >= "
        f"{th['organic']:.4f}; a non-organic item whose top material probability is below "
        f"{th['material_min_confidence']:.4g} goes to **residual** (as does anything called trash).",
        "",
        f"- stage 1 (organic vs not) accuracy: **{_pct(report['stage1_accuracy'])}** "
        f"(ROC AUC {report['stage1_roc_auc']:.4f})",
        f"- material accuracy (stage 2, before abstention): **{_pct(report['material_accuracy'])}** "
        f"over six classes; **{_pct(report.get('recyclable_material_accuracy'))}** on the five recyclables",
        f"- items in the right bin: **{_pct(report['bin_accuracy'])}**; sent to residual: "
        f"{_pct(report['residual_fraction'])}, of which for low confidence "
        f"{_pct(report['low_confidence_fraction'])}; items that belong in a sorted bin but went to "
        f"residual: {_pct(report.get('sortable_residual_fraction'))}",
        "",
        "## Targets",
        "",
        *_targets(report),
        "",
        "## Per bin",
        "",
        "Purity: share of the items in a bin that belong there. Recovery: share of the items that "
        "belong in a bin that reach it.",
        "",
        *_bins(report),
        "",
        *_variants(report),
        "## Plots",
        "",
        "- Confusion matrices: [stage 1](confusion_stage1.png), [material](confusion_material.png), "
        "[bins](confusion_bins.png)",
        "- [Stage-1 ROC and precision-recall](stage1_roc_pr.png)",
        "- [Purity vs recovery per bin](purity_recovery.png) as the abstain threshold moves",
        "- [The most confident mistakes](worst_mistakes.png) (wrong ejections first)",
        "",
        f"Model: `{manifest.architecture}`; trained with `{manifest.training.command}`.",
        "",
    ]
    if note := manifest.validation.get("note"):
        lines += [f"Note recorded with the model: {note}.", ""]
    return "\n".join(lines)
