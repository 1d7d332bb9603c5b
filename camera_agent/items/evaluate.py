"""``python -m camera_agent.items.evaluate VIDEO TRUTH``: run the item pipeline on a clip and score it.

Prints a table and then the figures as JSON: count against the truth, duplicates, misses, belt_x
and seq errors, frames per second and CPU milliseconds per frame (``time.process_time``), and, with
``--realtime``, the share of captured frames a live camera box would have processed (a frame that
arrives while the pipeline is busy is replaced by the next one, as a camera's one-frame buffer does).
Exit codes: 0 measured, 2 bad flags or an unreadable video.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
from pydantic import Field
from pydantic_settings import BaseSettings, CliPositionalArg
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from camera_agent.items.annotate import draw_items
from camera_agent.items.pipeline import ItemEvent, ItemsPipeline, PipelineStats
from camera_agent.items.scoring import Observed, score, within
from camera_agent.items.settings import ItemsSettings
from camera_agent.items.tracking import BoxTracker, ByteTrackBoxes
from sortline.belt import BeltFrame, ClipGeometry, Direction, Roi, TruthItem, clip_geometry_path, read_truth
from sortline.settings import SortlineSettings, parse_cli

EDGE_FRAMES = 2  # an item crossing in a clip's last frames may be seen crossing only after the clip ends


class EvaluateSettings(BaseSettings):
    """python -m camera_agent.items.evaluate: run the item pipeline on a video and compare it to its truth."""

    model_config = SortlineSettings.model_config

    video: CliPositionalArg[Path] = Field(description="Video file (e.g. from python -m sortline_dev.belt).")
    truth: CliPositionalArg[Path] = Field(description="Its truth, JSON lines.")
    direction: Direction | None = Field(
        None,
        description="Belt direction (top-to-bottom, bottom-to-top, left-to-right, right-to-left); default: "
        "the clip's .clip.json, else top-to-bottom.",
    )
    trigger: float | None = Field(
        None, gt=0.0, lt=1.0, description="Trigger line 0..1; default: the clip's, else 0.5."
    )
    roi: str | None = Field(
        None, pattern=r"^\d+,\d+,\d+,\d+$", description="x,y,w,h; default: the clip's, else the frame."
    )
    detect_width: int = Field(320, ge=96, le=3840, description="Width the ROI is scaled to for detection.")
    tracker: str = Field("bytetrack", pattern=r"^(bytetrack|sort|ocsort)$", description="Tracker to use.")
    realtime: bool = Field(
        False, description="Drop frames that arrive while busy, as a live camera at the clip's fps would."
    )
    one_core: bool = Field(False, description="Pin this process to one CPU core and OpenCV to one thread.")
    annotate: Path | None = Field(None, description="Also write the annotated video (boxes, ids, fps) here.")
    json_out: Path | None = Field(None, description="Also write the JSON figures to this file.")


@dataclass(slots=True)
class RunResult:
    events: list[ItemEvent]
    stats: PipelineStats
    captured: int = 0
    processed: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    decode_cpu_s: float = 0.0
    per_frame_cpu_ms: list[float] = field(default_factory=list)


def clip_geometry(video: Path) -> ClipGeometry | None:
    """The ``.clip.json`` a generated clip has beside it, if any."""
    path = clip_geometry_path(video)
    return ClipGeometry.model_validate_json(path.read_text()) if path.is_file() else None


def items_settings(settings: EvaluateSettings) -> tuple[ItemsSettings, float]:
    """Pipeline settings from the flags, falling back to the clip's geometry file."""
    clip = clip_geometry(settings.video)
    roi = Roi(**dict(zip("xywh", map(int, settings.roi.split(",")), strict=True))) if settings.roi else None
    items = ItemsSettings(
        direction=settings.direction or (clip.direction if clip else Direction.TOP_TO_BOTTOM),
        trigger=settings.trigger or (clip.trigger if clip else 0.5),
        roi=roi or (clip.roi if clip else None), detect_width=settings.detect_width,
    )  # fmt: skip
    return items, clip.fps if clip else 0.0


def items_settings_of_clip(video: Path, detect_width: int = 320) -> ItemsSettings:
    """Pipeline settings for a generated clip: its ROI, direction and trigger from its .clip.json."""
    clip = clip_geometry(video)
    if clip is None:
        raise ValueError(f"{video} has no {clip_geometry_path(video).name} beside it")
    return ItemsSettings(
        direction=clip.direction, trigger=clip.trigger, roi=clip.roi, detect_width=detect_width
    )


def run_pipeline(video: Path, items: ItemsSettings, fps: float = 0.0, tracker: str | BoxTracker = "bytetrack",
                 realtime: bool = False, annotate: Path | None = None) -> RunResult:  # fmt: skip
    """Feed every frame of ``video`` (or, realtime, those a live box would get to) to a pipeline."""
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise OSError(f"OpenCV cannot open {video}")
    fps = fps or capture.get(cv2.CAP_PROP_FPS) or 30.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    boxes = ByteTrackBoxes(fps, items.lost_frames, tracker) if isinstance(tracker, str) else tracker
    pipeline = ItemsPipeline(items, fps, boxes, id_prefix="eval")
    result = RunResult([], pipeline.stats)
    writer = None
    clock = 0.0  # virtual wall clock of a live box: when the pipeline is next free
    with tqdm(total=total, desc=video.name, unit="frame", leave=False) as progress:
        while True:
            decode_start = time.process_time()
            ok, frame = capture.read()
            result.decode_cpu_s += time.process_time() - decode_start
            if not ok:
                break
            index = result.captured
            result.captured += 1
            progress.update()
            if realtime and index < math.floor(clock * fps):
                continue  # a newer frame had arrived before the pipeline was free
            wall, cpu = time.perf_counter(), time.process_time()
            result.events += pipeline.process(frame, index, round(index / fps * 1e9))
            spent_cpu, spent_wall = time.process_time() - cpu, time.perf_counter() - wall
            result.cpu_s += spent_cpu
            result.wall_s += spent_wall
            result.per_frame_cpu_ms.append(spent_cpu * 1000)
            result.processed += 1
            clock = max(clock, index / fps) + spent_wall
            if annotate is not None:
                writer = writer or _writer(annotate, fps, frame)
                belt = BeltFrame(items.roi_for(frame.shape[1], frame.shape[0]), items.direction)
                writer.write(draw_items(frame, pipeline.tracks, belt, items.trigger, fps=_fps(result)))
    capture.release()
    if writer is not None:
        writer.release()
    pipeline.finish()
    return result


def _writer(path: Path, fps: float, frame) -> cv2.VideoWriter:
    path.parent.mkdir(parents=True, exist_ok=True)
    return cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frame.shape[1], frame.shape[0]))


def _fps(result: RunResult) -> float:
    return result.processed / result.wall_s if result.wall_s else 0.0


def figures(result: RunResult, everything: list[TruthItem], settings: EvaluateSettings) -> dict:
    observed = [Observed(e.seq, e.belt_x) for e in result.events]
    truth, observed = within(
        everything, observed, result.stats.warmup_frames, result.captured - 1 - EDGE_FRAMES
    )
    cpu = sorted(result.per_frame_cpu_ms)
    stats, processed = result.stats, max(result.processed, 1)
    return {
        "video": str(settings.video), "tracker": settings.tracker, "detect_width": settings.detect_width,
        "realtime": settings.realtime, "one_core": settings.one_core,
        "unscored_items": len(everything) - len(truth),
        **score(truth, observed),
        "touching_items": sum(t.touching for t in truth),
        "lost_before_trigger": stats.lost_before_trigger,
        "appeared_past_trigger": stats.appeared_past_trigger,
        "suppressed_duplicates": stats.suppressed_duplicates, "warmup_frames": stats.warmup_frames,
        "skipped_frames": stats.skipped_frames, "captured_frames": result.captured,
        "processed_frames": result.processed,
        "processed_ratio": round(result.processed / max(result.captured, 1), 3),
        "pipeline_fps": round(_fps(result), 1), "cpu_ms_per_frame": round(1000 * result.cpu_s / processed, 2),
        "cpu_ms_p95": round(cpu[int(0.95 * (len(cpu) - 1))], 2) if cpu else None,
        "decode_cpu_ms_per_frame": round(1000 * result.decode_cpu_s / max(result.captured, 1), 2),
    }  # fmt: skip


def print_table(report: dict, console: Console) -> None:
    table = Table(title=f"items on {Path(report['video']).name}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in report.items():
        if key != "video":
            table.add_row(key, str(value))
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_cli(EvaluateSettings, argv, prog="python -m camera_agent.items.evaluate")
    if settings.one_core:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        cv2.setNumThreads(1)
    try:
        truth = read_truth(settings.truth)  # a bad truth file fails before the long run, not after
        items, fps = items_settings(settings)
        result = run_pipeline(
            settings.video, items, fps, settings.tracker, settings.realtime, settings.annotate
        )
    except (OSError, ValueError) as error:  # pydantic's ValidationError is a ValueError
        print(f"python -m camera_agent.items.evaluate: {error}", file=sys.stderr)
        return 2
    report = figures(result, truth, settings)
    print_table(report, Console(highlight=False))
    print(json.dumps(report))
    if settings.json_out:
        settings.json_out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
