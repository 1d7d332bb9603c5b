"""``python scripts/belt_counts_eval.py LABEL SEED...``: the item pipeline's counts per clip and per set.

The tracker bench (``scripts/belt_tracker_bench.py``) makes the clips and compares trackers; this
prints what docs/belt.md tabulates per set of seeds and kind of clip (apart, touching): items,
events, misses, extras, count error, the largest belt_x and seq errors, CPU ms per frame. The
figures of every clip go to ``<folder>/counts-LABEL.json``, so two detectors can be compared clip
by clip. Run from the repository root with the repository on the path:

    PYTHONPATH=. python scripts/belt_counts_eval.py current 101 102 103 --folder runs/belt-bench
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # one line per clip, not a progress bar per clip

from camera_agent.items.evaluate import items_settings_of_clip, run_pipeline
from camera_agent.items.scoring import Observed, score, within
from sortline.belt import read_truth

KINDS = ("apart", "touching")


def measure(video: Path) -> dict:
    """One clip's figures, scored as the tracker bench scores them."""
    result = run_pipeline(video, items_settings_of_clip(video), 30.0)
    observed = [Observed(e.seq, e.belt_x) for e in result.events]
    truth, observed = within(read_truth(video.with_suffix(".truth.jsonl")), observed,
                             result.stats.warmup_frames, result.captured - 3)  # fmt: skip
    figures = score(truth, observed)
    figures["cpu_ms"] = round(1000 * result.cpu_s / max(result.processed, 1), 2)
    return figures


def totals(rows: list[dict]) -> dict:
    """A set's figures: counts added up, errors at their worst (seq mean weighted by matches)."""
    items, events = sum(r["truth_items"] for r in rows), sum(r["events"] for r in rows)
    matched = max(sum(r["matched"] for r in rows), 1)
    return {
        "items": items, "events": events, "missed": sum(r["missed"] for r in rows),
        "extra": sum(r["extra"] for r in rows), "duplicates": sum(r["duplicates"] for r in rows),
        "count_error_pct": round(100 * (events - items) / max(items, 1), 1),
        "belt_x_err_max": max(r["belt_x_err_max"] or 0.0 for r in rows),
        "seq_err_max": max(r["seq_err_max"] or 0 for r in rows),
        "seq_err_mean": round(sum((r["seq_err_mean"] or 0.0) * r["matched"] for r in rows) / matched, 2),
        "per_clip_pct": [r["count_error_pct"] for r in rows],
        "cpu_ms": round(sum(r["cpu_ms"] for r in rows) / len(rows), 1),
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scripts/belt_counts_eval.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("label", help="name of this run (the JSON file's name)")
    parser.add_argument("seeds", type=int, nargs="+", help="clip seeds, as made by the tracker bench")
    parser.add_argument("--folder", type=Path, default=Path("runs/belt-bench"), help="where the clips are")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    args = parser.parse_args(argv)
    rows = []
    for kind in args.kinds:
        for seed in args.seeds:
            rows.append(
                {"clip": f"{kind}-{seed}", "kind": kind, **measure(args.folder / f"{kind}-{seed}.mp4")}
            )
            print(json.dumps(rows[-1]), flush=True)
    for kind in args.kinds:
        print(json.dumps({"label": args.label, "kind": kind, "seeds": args.seeds,
                          **totals([r for r in rows if r["kind"] == kind])}))  # fmt: skip
    (args.folder / f"counts-{args.label}.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
