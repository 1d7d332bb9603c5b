"""Write a belt clip (MP4) with its truth (JSON lines) and its geometry (JSON)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
from tqdm import tqdm

from sortline.belt import ClipGeometry, Roi, TruthItem, clip_geometry_path, write_truth
from sortline_dev.belt.cutouts import load_cutouts
from sortline_dev.belt.render import BeltRenderer, orient, orient_box
from sortline_dev.belt.scene import BeltItem, Scene
from sortline_dev.belt.settings import BeltClipSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClipLayout:
    """Where the belt is in canonical pixels (rows along, columns across) and in the output frame."""

    length: int
    across: int
    belt: tuple[int, int]
    roi: Roi

    @classmethod
    def of(cls, settings: BeltClipSettings) -> ClipLayout:
        vertical = settings.direction.vertical
        length, across = (settings.height, settings.width) if vertical else (settings.width, settings.height)
        margin = round(settings.belt_margin * across)
        belt = (margin, across - margin)
        if vertical:
            roi = Roi(x=belt[0], y=0, w=belt[1] - belt[0], h=length)
        else:
            roi = Roi(x=0, y=belt[0], w=length, h=belt[1] - belt[0])
        return cls(length, across, belt, roi)


def visible_box(item: BeltItem, frame: int) -> tuple[int, int, int, int]:
    """The item's opaque pixels' box in canonical (row, col, rows, cols)."""
    sprite = item.sprite(frame)
    rows, cols = np.nonzero(sprite.alpha > 0.5)
    r0, c0 = sprite.row + int(rows.min()), sprite.col + int(cols.min())
    return r0, c0, int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1


class TruthRecorder:
    """Notes the first frame in which each item's box centre reaches the trigger line."""

    def __init__(self, settings: BeltClipSettings, layout: ClipLayout) -> None:
        self.settings, self.layout = settings, layout
        self.trigger_row = settings.trigger * layout.length
        self.crossed: dict[int, TruthItem] = {}

    def observe(self, frame: int, items: list[BeltItem]) -> None:
        for item in items:
            if item.item_id in self.crossed or item.centre(frame)[0] + item.radius < self.trigger_row:
                continue
            row, col, rows, cols = visible_box(item, frame)
            if row + rows / 2 < self.trigger_row:
                continue
            belt = self.layout.belt
            self.crossed[item.item_id] = TruthItem(
                item_id=item.item_id, label=item.cutout.label, cutout=item.cutout.name, seq=frame,
                belt_x=round((col + cols / 2 - belt[0]) / (belt[1] - belt[0]), 4),
                bbox=orient_box((row, col, rows, cols), self.settings.direction, self.layout.length),
                touching=item.touching,
            )  # fmt: skip


def generate_clip(settings: BeltClipSettings) -> list[TruthItem]:
    """Render the clip, write video, truth and geometry; returns the truth."""
    scene_rng, render_rng = np.random.default_rng(settings.seed).spawn(2)  # arrivals independent of looks
    cv2.setRNGSeed(settings.seed)
    layout = ClipLayout.of(settings)
    scene = Scene(settings, scene_rng, load_cutouts(settings.classes), layout.length, layout.belt)
    renderer = BeltRenderer(settings, render_rng, layout.length, layout.across, layout.belt)
    recorder = TruthRecorder(settings, layout)
    settings.out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(settings.out), cv2.VideoWriter_fourcc(*"mp4v"), settings.fps,
                             (settings.width, settings.height))  # fmt: skip
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {settings.out} with the mp4v codec")
    try:
        for frame in tqdm(range(settings.frame_count), desc=settings.out.name, unit="frame", leave=False):
            items = scene.step(frame)
            recorder.observe(frame, items)
            writer.write(orient(renderer.render(frame, items, scene.speed * frame), settings.direction))
    finally:
        writer.release()
    truth = sorted(recorder.crossed.values(), key=lambda t: (t.seq, t.item_id))
    write_clip_files(settings, layout, truth)
    return truth


def write_clip_files(settings: BeltClipSettings, layout: ClipLayout, truth: list[TruthItem]) -> None:
    """The truth as JSON lines and the clip's geometry as ``.clip.json`` beside the video."""
    write_truth(settings.truth_path(), truth)
    info = ClipGeometry(
        video=settings.out.name, width=settings.width, height=settings.height, fps=settings.fps,
        frames=settings.frame_count, direction=settings.direction, trigger=settings.trigger, roi=layout.roi,
        items=len(truth), settings=settings.model_dump(mode="json"),
    )  # fmt: skip
    clip_geometry_path(settings.out).write_text(info.model_dump_json(indent=2) + "\n")
