"""summary.md of an evaluation report: the figures a plant engineer asks for, in plain words."""

from __future__ import annotations

from typing import Any

from sortline.manifest import ModelManifest


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _check(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _row(report: dict[str, Any], what: str, name: str, goal: float, at_least: bool) -> str:
    """A target row; a figure the data cannot give says why instead of being judged as 0."""
    value = report.get(name)
    sign = ">=" if at_least else "<="
    if value is None:
        why = (report.get("not_measurable") or {}).get(name, "no items")
        return f"| {what} | {sign} {_pct(goal)} | not measurable: {why} | no verdict |"
    ok = value >= goal if at_least else value <= goal
    return f"| {what} | {sign} {_pct(goal)} | {_pct(value)} | {_check(ok)} |"


def _small(report: dict[str, Any], f: dict[str, Any]) -> bool:
    """A bin whose purity rests on too few items to be judged."""
    return f["purity"] is not None and f["predicted"] < report.get("min_bin_items", 1)


def _purity_row(report: dict[str, Any]) -> str:
    """Worst purity over the sorted bins that hold enough items; never a verdict from a handful."""
    goal, n = report["targets"]["bin_purity"], report.get("min_bin_items", 1)
    judged = {
        name: f
        for name, f in report["per_bin"].items()
        if name not in ("residual", "hazard") and f["purity"] is not None and not _small(report, f)
    }
    if not judged:
        here = f"not measurable: no sorted bin holds {n} items"
        return f"| worst bin purity | >= {_pct(goal)} | {here} | no verdict |"
    name, worst = min(judged.items(), key=lambda item: item[1]["purity"])
    here = f"{_pct(worst['purity'])} ({name}, {worst['predicted']} items)"
    return f"| worst bin purity | >= {_pct(goal)} | {here} | {_check(worst['purity'] >= goal)} |"


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


def _targets(report: dict[str, Any]) -> list[str]:
    t = report["targets"]
    lines = [
        "| target | goal | here | |",
        "|---|---|---|---|",
        _row(report, "material accuracy (the five recyclables)", "recyclable_material_accuracy",
             t["recyclable_material_accuracy"], at_least=True),
        _row(report, "organic vs not (stage 1)", "stage1_accuracy", t["stage1_accuracy"], at_least=True),
        _purity_row(report),
        _row(report, "sent to residual (incl. trash)", "residual_fraction", t["residual_fraction"],
             at_least=False),
        _row(report, "sortable items sent to residual (trash excluded)", "sortable_residual_fraction",
             t["residual_fraction"], at_least=False),
        *_hazard_targets(report),
    ]  # fmt: skip
    small = [
        f"{name} {_pct(f['purity'])} of {f['predicted']}"
        for name, f in report["per_bin"].items()
        if name != "residual" and _small(report, f)
    ]
    if small:
        lines += [
            "",
            f"Bins with fewer than {report['min_bin_items']} items, shown but not judged: "
            f"{', '.join(small)}.",
        ]
    return lines


def _purity_cell(report: dict[str, Any], f: dict[str, Any]) -> str:
    if _small(report, f):
        return f"{_pct(f['purity'])} (of {f['predicted']}, too few to judge)"
    return _pct(f["purity"])


def _bins(report: dict[str, Any]) -> list[str]:
    lines = [
        "| bin | items sent there | items that belong there | purity | recovery |",
        "|---|---|---|---|---|",
    ]
    for name, f in report["per_bin"].items():
        purity, recovery = _purity_cell(report, f), _pct(f["recovery"])
        lines.append(f"| {name} | {f['predicted']} | {f['expected']} | {purity} | {recovery} |")
    return lines


VARIANT_ROLES = {"int8": "for CPU workers", "fp16": "for GPU workers"}


def _variants(report: dict[str, Any]) -> list[str]:
    """One paragraph per variant the manifest measured, said to be the manifest's, not this run's."""
    variants = (report.get("from_manifest") or {}).get("variants") or {}
    lines: list[str] = []
    for name, role in VARIANT_ROLES.items():
        figures = variants.get(name)
        if not figures:
            continue
        kept = "committed next to the fp32 model" if figures.get("kept") else "not committed (costs too much)"
        speed = figures.get("speed_img_per_s")
        lines += [
            f"## {name} variant ({role}), as recorded at training time",
            "",
            "From manifest.json, measured when the model was trained (its validation split, the training "
            "machine), not in this run: "
            f"material accuracy {_pct(figures['validation']['material_accuracy'])} "
            f"({100 * figures['accuracy_delta']:+.2f} points vs fp32), bin agreement with fp32 "
            f"{_pct(figures['vs_fp32']['bin_agreement'])}; {kept}."
            + (
                " Speed on the training machine (ONNX Runtime, CPU): "
                + ", ".join(f"{k} {v} img/s" for k, v in speed.items())
                + "."
                if speed
                else ""
            ),
            "",
        ]
    return lines


def _scored(report: dict[str, Any]) -> str:
    """Which file was scored, and whether it is the one CPU workers serve (``--variant auto``)."""
    file = report.get("scored_file")
    if file is None:
        return "scored through the worker's own preprocessing."
    served = report.get("served_files") or {}
    variant = report.get("variant", "main")
    text = f"scored with `{file}` (variant {variant}) through the worker's own preprocessing."
    if served.get("cpu") == file:
        return text + f" CPU workers serve this file (`--variant auto`); GPU workers `{served.get('gpu')}`."
    if served:
        return text + f" CPU workers serve `{served['cpu']}`, not this file: score it with `--variant auto`."
    return text


def _stage1_auc(report: dict[str, Any]) -> str:
    why = (report.get("not_measurable") or {}).get("stage1_roc_auc")
    return f"ROC AUC not measurable: {why}" if why else f"ROC AUC {report['stage1_roc_auc']:.4f}"


def _plot_links(report: dict[str, Any]) -> list[str]:
    why = (report.get("not_measurable") or {}).get("stage1_roc_auc")
    roc = (
        f"- Stage-1 ROC and precision-recall: not measurable ({why}), no plot"
        if why
        else "- [Stage-1 ROC and precision-recall](stage1_roc_pr.png)"
    )
    return [
        "- Confusion matrices: [stage 1](confusion_stage1.png), [material](confusion_material.png), "
        "[bins](confusion_bins.png)",
        roc,
        "- [Purity vs recovery per bin](purity_recovery.png) as the abstain threshold moves",
        "- [The most confident mistakes](worst_mistakes.png) (wrong ejections first)",
    ]


def render_summary(report: dict[str, Any], manifest: ModelManifest) -> str:
    """Markdown: what was measured, against the targets, per bin, and the pictures."""
    th = report["thresholds"]
    lines = [
        f"# Model report: {report['model_version']}",
        "",
        f"{report['n_images']} images of the `{report['split']}` split, {_scored(report)} "
        "Thresholds: an item goes to **organic** when p_organic >= "
        f"{th['organic']:.4f}; a non-organic item whose top material probability is below "
        f"{th['material_min_confidence']:.4g} goes to **residual** (as does anything called trash).",
        "",
        f"- stage 1 (organic vs not) accuracy: **{_pct(report['stage1_accuracy'])}** ({_stage1_auc(report)})",
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
        *_plot_links(report),
        "",
        f"Model: `{manifest.architecture}`; trained with `{manifest.training.command}`.",
        "",
    ]
    if note := manifest.validation.get("note"):
        lines += [f"Note recorded with the model: {note.rstrip('.')}.", ""]
    return "\n".join(lines)
