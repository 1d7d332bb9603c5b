"""``python scripts/belt_tracker_bench.py``: measure trackers for the item pipeline on generated clips.

Each tracker runs behind the same detector on the same clips, once as detected and once with
flicker (detections dropped at random, whole frames now and then, as brief occlusion or a blink
of the detector would), and is scored on count, misses, extra events and its own CPU time per
frame. Candidates: ByteTrack, SORT and OC-SORT from Roboflow's ``trackers``, and norfair (dev
measurement only: it pins numpy<2, so it is installed here with ``--no-deps``). Prints a table,
then JSON. The figures in docs/belt.md come from this command. It lives in scripts/ because it
joins the generator (sortline_dev) and the pipeline (camera_agent), which do not import each other.
Run it from the repository root with the repository on the path:

    PYTHONPATH=. python scripts/belt_tracker_bench.py --folder runs/belt-bench --seeds 101 102 103
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from camera_agent.items.evaluate import items_settings_of_clip, run_pipeline
from camera_agent.items.scoring import Observed, score, within
from camera_agent.items.tracking import BoxTracker, ByteTrackBoxes, TrackedBox
from sortline.belt import read_truth
from sortline_dev.belt.clip import generate_clip
from sortline_dev.belt.settings import BeltClipSettings

TRACKERS = ("bytetrack", "sort", "ocsort", "norfair")


class NorfairBoxes:
    """norfair's tracker on box corners with its IoU distance."""

    def __init__(self, fps: float, lost_frames: int) -> None:
        import norfair

        self._norfair = norfair
        self._tracker = norfair.Tracker(
            distance_function="iou",
            distance_threshold=0.9,
            hit_counter_max=lost_frames,
            initialization_delay=1,
        )

    def update(self, boxes: np.ndarray, timestamp_s: float) -> list[TrackedBox]:
        detections = [self._norfair.Detection(points=box.reshape(2, 2)) for box in boxes]
        tracked = self._tracker.update(detections)
        return [
            TrackedBox(t.id, tuple(float(v) for v in t.estimate.reshape(-1)))
            for t in tracked
            if t.id is not None
        ]


class Flicker:
    """Drops each box with probability ``box_p`` and every box of a frame with ``frame_p``."""

    def __init__(self, inner: BoxTracker, box_p: float, frame_p: float, seed: int) -> None:
        self.inner, self.box_p, self.frame_p = inner, box_p, frame_p
        self.rng = np.random.default_rng(seed)

    def update(self, boxes: np.ndarray, timestamp_s: float) -> list[TrackedBox]:
        keep = self.rng.random(len(boxes)) >= self.box_p
        if self.rng.random() < self.frame_p:
            keep[:] = False
        return self.inner.update(boxes[keep], timestamp_s)


class Timed:
    """Adds up the CPU time spent inside a tracker."""

    def __init__(self, inner: BoxTracker) -> None:
        self.inner, self.cpu_s, self.calls = inner, 0.0, 0

    def update(self, boxes: np.ndarray, timestamp_s: float) -> list[TrackedBox]:
        start = time.process_time()
        try:
            return self.inner.update(boxes, timestamp_s)
        finally:
            self.cpu_s += time.process_time() - start
            self.calls += 1


@dataclass(frozen=True, slots=True)
class Clip:
    name: str
    settings: BeltClipSettings


def make_clips(folder: Path, seeds: Sequence[int], width: int, height: int, seconds: float) -> list[Clip]:
    """Two kinds per seed, directions varied: items apart, and a third of arrivals as touching pairs."""
    directions = ("top-to-bottom", "right-to-left", "left-to-right", "bottom-to-top")
    clips = []
    for index, seed in enumerate(seeds):
        for kind, touching in (("apart", 0.0), ("touching", 0.33)):
            name = f"{kind}-{seed}"
            settings = BeltClipSettings(
                out=folder / f"{name}.mp4", seed=seed, width=width, height=height, seconds=seconds,
                touching=touching, items_per_second=2.0, direction=directions[index % len(directions)],
            )  # fmt: skip
            if not settings.out.exists():
                generate_clip(settings)
            clips.append(Clip(name, settings))
    return clips


def measure(clip: Clip, tracker: str, flicker: bool) -> dict:
    items = items_settings_of_clip(clip.settings.out)
    fps = clip.settings.fps
    inner: BoxTracker = (
        NorfairBoxes(fps, items.lost_frames)
        if tracker == "norfair"
        else ByteTrackBoxes(fps, items.lost_frames, tracker)
    )
    timed = Timed(Flicker(inner, 0.15, 0.05, clip.settings.seed) if flicker else inner)
    result = run_pipeline(clip.settings.out, items, fps, tracker=timed)
    observed = [Observed(e.seq, e.belt_x) for e in result.events]
    truth, observed = within(read_truth(clip.settings.truth_path()), observed, result.stats.warmup_frames,
                             result.captured - 3)  # fmt: skip
    figures = score(truth, observed)
    return {"clip": clip.name, "tracker": tracker, "flicker": flicker, **figures,
            "tracker_cpu_ms": round(1000 * timed.cpu_s / max(timed.calls, 1), 3)}  # fmt: skip


def summarise(rows: list[dict]) -> list[dict]:
    """Per tracker and flicker setting: totals over the clips."""
    summary = []
    for tracker in dict.fromkeys(r["tracker"] for r in rows):
        for flicker in (False, True):
            group = [r for r in rows if r["tracker"] == tracker and r["flicker"] == flicker]
            if not group:
                continue
            truth = sum(r["truth_items"] for r in group)
            summary.append({
                "tracker": tracker, "flicker": flicker, "truth_items": truth,
                "events": sum(r["events"] for r in group), "missed": sum(r["missed"] for r in group),
                "extra": sum(r["extra"] for r in group), "duplicates": sum(r["duplicates"] for r in group),
                "count_error_pct": round(100 * (sum(r["events"] for r in group) - truth) / max(truth, 1), 2),
                "tracker_cpu_ms": round(sum(r["tracker_cpu_ms"] for r in group) / len(group), 3),
            })  # fmt: skip
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scripts/belt_tracker_bench.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--folder", type=Path, default=Path("runs/belt-bench"), help="where clips are made")
    parser.add_argument("--seeds", type=int, nargs="+", default=[101, 102], help="clip seeds")
    parser.add_argument("--trackers", nargs="+", choices=TRACKERS, default=list(TRACKERS))
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args(argv)
    clips = make_clips(args.folder, args.seeds, args.width, args.height, args.seconds)
    rows = [measure(c, t, f) for t in args.trackers for f in (False, True) for c in clips]
    summary = summarise(rows)
    table = Table(title="trackers on generated belt clips")
    for column in summary[0]:
        table.add_column(column)
    for row in summary:
        table.add_row(*(str(v) for v in row.values()))
    Console(highlight=False).print(table)
    print(json.dumps({"clips": [c.name for c in clips], "summary": summary, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
