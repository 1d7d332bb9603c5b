"""Ratios, pass/fail against the issue's targets, and the rich table on stderr."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

#: (name, what, comparison, target); the value comes from ``ratios``.
TARGETS = (
    ("raw_images_per_s", "raw model, best batch (img/s)", ">=", 200.0),
    ("pipeline_over_raw", "pipeline / raw", ">=", 0.90),
    ("pipeline_over_naive", "pipeline / naive (seed's way)", ">=", 8.0),
    ("latency_p99_ms", "latency p99 at 50% load (ms)", "<=", 50.0),
    ("malformed_valid_over_clean", "valid dec/s with 50% malformed / clean", ">=", 0.90),
)

VERDICTS = {True: "[green]met[/]", False: "[red]not met[/]", None: "[dim]not measured[/]"}


def _section(results: dict[str, Any], name: str) -> dict[str, Any]:
    """A measured section, or {} when it was skipped or failed."""
    section = results.get(name) or {}
    return {} if "error" in section else section


def _get(results: dict[str, Any], section: str, key: str) -> float | None:
    value = _section(results, section).get(key)
    return float(value) if isinstance(value, int | float) else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def compute_ratios(results: dict[str, Any]) -> dict[str, float | None]:
    raw = _get(results, "raw", "best_images_per_s")
    pipeline = _get(results, "pipeline", "decisions_per_s")
    return {
        "raw_images_per_s": raw,
        "pipeline_decisions_per_s": pipeline,
        "pipeline_over_raw": _ratio(pipeline, raw),
        "pipeline_over_naive": _ratio(pipeline, _get(results, "naive", "frames_per_s")),
        "latency_p99_ms": _get(results, "latency", "p99_ms"),
        "multi_worker_over_one": _ratio(_get(results, "multi_worker", "decisions_per_s"), pipeline),
        # The median of (f)'s pairs of clean and mixed drains, both timed at the tap.
        "malformed_valid_over_clean": _get(results, "malformed", "valid_over_clean_median"),
    }


def check_targets(ratios: dict[str, float | None]) -> list[dict[str, Any]]:
    checks = []
    for name, what, op, target in TARGETS:
        value = ratios.get(name)
        met = None if value is None else (value >= target if op == ">=" else value <= target)
        checks.append({"name": name, "what": what, "value": value, "target": f"{op} {target:g}", "met": met})
    return checks


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _cpu_budget_row(table: Table, raw: dict[str, Any], pipeline: dict[str, Any]) -> None:
    """Where the cores go per frame: the model alone, the whole worker, and a local broker."""
    if not pipeline:
        return
    ms = {"worker": pipeline["worker_cpu_seconds_per_decision"] * 1000}
    if pipeline.get("broker_cpu_seconds_per_decision") is not None:
        ms["broker"] = pipeline["broker_cpu_seconds_per_decision"] * 1000
    if raw:
        ms["model alone (a)"] = raw["batch_sizes"][str(raw["best_batch_size"])]["cpu_ms_per_image"]
    table.add_row(
        "(b) CPU per decision",
        f"{sum(v for k, v in ms.items() if k != 'model alone (a)'):.2f} core-ms",
        ", ".join(f"{name} {value:.2f} ms" for name, value in ms.items()),
    )


def _figures_table(results: dict[str, Any]) -> Table:
    table = Table(title="Sortline worker benchmark", title_justify="left")
    table.add_column("measurement")
    table.add_column("figure", justify="right")
    table.add_column("notes")
    raw = _section(results, "raw")
    for batch, point in (raw.get("batch_sizes") or {}).items():
        table.add_row(f"(a) raw model, batch {batch}", f"{point['images_per_s']:,.1f} img/s", "")
    if raw:
        best = f"{raw['best_images_per_s']:,.1f} img/s"
        table.add_row("(a) raw best", best, f"batch {raw['best_batch_size']}")
    pipeline = _section(results, "pipeline")
    if pipeline:
        stages = ", ".join(f"{k} {v['mean_ms']} ms" for k, v in pipeline["stages"].items())
        table.add_row(
            "(b) pipeline, 1 worker",
            f"{pipeline['decisions_per_s']:,.1f} dec/s",
            f"{pipeline['decisions']} frames, mean batch {pipeline['mean_batch_size']}; {stages}",
        )
    _cpu_budget_row(table, raw, pipeline)
    latency = _section(results, "latency")
    if latency:
        table.add_row(
            "(c) latency p50 / p95 / p99 / max",
            f"{latency['p50_ms']:.1f} / {latency['p95_ms']:.1f} / {latency['p99_ms']:.1f} / "
            f"{latency['max_ms']:.1f} ms",
            f"{latency['decided']} frames at {latency['achieved_publish_fps']:.1f} fps",
        )
    naive = _section(results, "naive")
    if naive:
        table.add_row(
            "(d) naive (seed's way)",
            f"{naive['frames_per_s']:,.1f} frames/s",
            f"stage 2 on {naive['stage2_fraction']:.0%} of {naive['frames']} frames",
        )
    malformed = _section(results, "malformed")
    if malformed:
        table.add_row(
            "(f) valid dec/s among malformed",
            f"{malformed['valid_decisions_per_s']:,.1f} dec/s",
            f"{malformed['valid_frames']} valid + {malformed['malformed_frames']} malformed, x"
            f"{malformed['rounds']}; {malformed['dead_lettered']} dead-lettered; clean drains "
            f"{malformed['clean_decisions_per_s']:,.1f} dec/s (medians); pair ratios "
            + " ".join(f"{r:.2f}" for r in malformed["pair_ratios"])
            + f"; CPU-ms per valid {malformed['cpu_ms_per_valid_clean']:.2f}, per malformed "
            f"{malformed['cpu_ms_per_malformed']:.2f}",
        )
    multi = _section(results, "multi_worker")
    if multi:
        table.add_row(
            f"(e) pipeline, {multi['workers']} workers",
            f"{multi['decisions_per_s']:,.1f} dec/s",
            f"x{_fmt(results['ratios']['multi_worker_over_one'], 2)} of one worker",
        )
    for name in ("raw", "pipeline", "latency", "naive", "multi_worker", "malformed"):
        error = (results.get(name) or {}).get("error")
        if error:
            table.add_row(f"{name}", "[red]failed[/]", error)
    return table


def _targets_table(results: dict[str, Any]) -> Table:
    table = Table(title="Targets", title_justify="left")
    for column in ("target", "value", "goal", "result"):
        table.add_column(column)
    for check in results["targets"]:
        verdict = VERDICTS[check["met"]]
        table.add_row(check["what"], _fmt(check["value"], 2), check["target"], verdict)
    multi = _fmt(results["ratios"]["multi_worker_over_one"], 2)
    table.add_row("multi worker / one worker", multi, "-", "info only")
    return table


def print_tables(results: dict[str, Any], console: Console) -> None:
    machine = results["machine"]
    console.print(
        f"[bold]{machine['cpu_model']}[/], {machine['usable_cores']} cores ({', '.join(machine['simd'])}), "
        f"onnxruntime {machine['onnxruntime']}, torch {machine['torch']}, model {machine['model_version']}, "
        f"load {machine['load_average_at_start']}"
    )
    console.print(_figures_table(results))
    console.print(_targets_table(results))
