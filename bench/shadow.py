"""``python -m bench.shadow``: what a shadow candidate costs the worker that serves the line.

One worker drains a pre-filled queue of ``--frames`` frames, alternately without a candidate and
with one on trial (``--shadow --shadow-share``), ``--rounds`` times each, in one run: the host's
speed drifts, so only the ratio of neighbouring drains means anything. The candidate is the
served model published again as a second registry version: the same network, so the same cost a
retrained candidate of the serving architecture has. Prints JSON on stdout and a table on stderr;
the target (shadow at 10% costs at most 15% of decisions/s) is reported as met or not.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.frames import load_frames
from bench.pipeline import measure_throughput
from sortline.registry import CANDIDATE, CURRENT, ModelRegistry
from sortline.settings import SortlineSettings, parse_cli
from sortline_runtime.model import DEFAULT_MODEL_DIR

#: Largest share of decisions/s the shadow may take at a 10% share.
TARGET_COST = 0.15


class ShadowBenchSettings(SortlineSettings):
    """Measure one worker's decisions/s with and without a shadow candidate, side by side."""

    model: Path = Field(DEFAULT_MODEL_DIR, description="Model served, and tried again as the candidate.")
    frames: int = Field(1500, ge=50, le=1_000_000, description="Frames per drain.")
    rounds: int = Field(3, ge=1, le=50, description="Drains of each kind, alternated.")
    share: float = Field(0.1, gt=0.0, le=1.0, description="--shadow-share of the drains with a candidate.")
    worker_args: str = Field("", description="Extra flags for the worker, one quoted string.")


def registry_of(model: Path, root: Path) -> Path:
    registry = ModelRegistry(root)
    registry.point(CURRENT, registry.publish(model), "promote")
    registry.point(CANDIDATE, registry.publish(model), "shadow")
    return root


def drains(settings: ShadowBenchSettings, registry: Path, progress: Progress) -> list[dict[str, Any]]:
    url, frames = settings.amqp_url.get_secret_value(), load_frames()
    extra = tuple(settings.worker_args.split())
    quiet = ("--review-audit-share", "0")
    kinds = {"without": quiet, "with": ("--shadow", "--shadow-share", str(settings.share), *quiet)}
    results = []
    for round_ in range(settings.rounds):
        for kind, flags in kinds.items():
            task = progress.add_task(f"round {round_ + 1}, {kind} shadow", total=settings.frames)
            drained = measure_throughput(url, registry, frames, settings.frames, 1,
                                         lambda n, t=task: progress.update(t, completed=n),
                                         (*flags, *extra))  # fmt: skip
            results.append({"round": round_ + 1, "with_shadow": kind == "with", **drained})
    return results


def summarise(settings: ShadowBenchSettings, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Cost per round from the two drains of that round; the median over rounds is the figure."""
    costs = []
    for round_ in range(1, settings.rounds + 1):
        plain, shadowed = (next(r for r in results if r["round"] == round_ and r["with_shadow"] == s)
                           for s in (False, True))  # fmt: skip
        costs.append(1.0 - shadowed["decisions_per_s"] / plain["decisions_per_s"])
    shadowed = [r for r in results if r["with_shadow"]]
    looked = sum(r["shadow"]["decisions"] for r in shadowed)
    skipped = sum(r["shadow"]["skipped"] for r in shadowed)
    decided = sum(r["decisions"] for r in shadowed)
    cost = statistics.median(costs)
    return {
        "share": settings.share,
        "cost_per_round": [round(c, 4) for c in costs],
        "cost_median": round(cost, 4),
        "share_looked_at": round(looked / decided, 4) if decided else None,
        "share_skipped": round(skipped / decided, 4) if decided else None,
        "target": f"cost_median <= {TARGET_COST} at share 0.1",
        "met": cost <= TARGET_COST if settings.share == 0.1 else None,
    }


def print_table(results: list[dict[str, Any]], summary: dict[str, Any], console: Console) -> None:
    table = Table(title=f"One worker, with and without a shadow candidate at {summary['share']:.0%}")
    for column in ("round", "shadow", "decisions/s", "looked at", "skipped"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(str(r["round"]), "yes" if r["with_shadow"] else "no", f"{r['decisions_per_s']:.1f}",
                      str(r["shadow"]["decisions"]), str(r["shadow"]["skipped"]))  # fmt: skip
    console.print(table)
    met = {True: "met", False: "NOT met", None: "not judged (share is not 0.1)"}[summary["met"]]
    console.print(f"cost (median of rounds): {summary['cost_median']:.1%}; "
                  f"target {summary['target']}: {met}")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_cli(ShadowBenchSettings, argv, prog="python -m bench.shadow")
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory() as folder, Progress(console=console) as progress:
        results = drains(settings, registry_of(settings.model, Path(folder) / "registry"), progress)
    summary = summarise(settings, results)
    slim = [{k: v for k, v in r.items() if k not in ("stages", "bins")} for r in results]
    print(json.dumps({"benchmark": "sortline-bench-shadow", "command": " ".join(["python -m bench.shadow",
                      *(sys.argv[1:] if argv is None else argv)]), "summary": summary, "drains": slim},
                     indent=2))  # fmt: skip
    print_table(results, summary, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
