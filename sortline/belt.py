"""Belt geometry shared by the camera agent and the belt generator, and the files of a generated clip.

Which way items travel, the region of interest, and positions along and across it.

Every pixel position is mapped to two numbers inside the ROI: ``along`` (0 at the upstream edge,
1 at the downstream edge, so the trigger is a single number whatever the direction) and
``across`` = ``belt_x`` (0..1). ``belt_x`` follows the image axes, not the direction of travel:
for a vertical belt it is 0 at the ROI's left edge, for a horizontal belt 0 at its top edge, so
an ejector bar's valves map to ``belt_x`` the same way whichever way the belt runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class Direction(StrEnum):
    """Which way the belt carries items across the image."""

    TOP_TO_BOTTOM = "top-to-bottom"
    BOTTOM_TO_TOP = "bottom-to-top"
    LEFT_TO_RIGHT = "left-to-right"
    RIGHT_TO_LEFT = "right-to-left"

    @property
    def vertical(self) -> bool:
        return self in (Direction.TOP_TO_BOTTOM, Direction.BOTTOM_TO_TOP)

    @property
    def reversed(self) -> bool:
        """True when items move towards smaller image coordinates."""
        return self in (Direction.BOTTOM_TO_TOP, Direction.RIGHT_TO_LEFT)


class Roi(BaseModel):
    """The part of the frame that shows the belt, in frame pixels."""

    model_config = ConfigDict(frozen=True)

    x: int = Field(ge=0, description="Left edge of the belt region in pixels.")
    y: int = Field(ge=0, description="Top edge of the belt region in pixels.")
    w: int = Field(ge=8, description="Width of the belt region in pixels.")
    h: int = Field(ge=8, description="Height of the belt region in pixels.")

    def fits(self, width: int, height: int) -> bool:
        return self.x + self.w <= width and self.y + self.h <= height

    def scaled(self, factor: float) -> Roi:
        return Roi(
            x=round(self.x * factor),
            y=round(self.y * factor),
            w=max(8, round(self.w * factor)),
            h=max(8, round(self.h * factor)),
        )


class BeltFrame:
    """Converts frame pixels to (along, across) fractions of one ROI for one direction."""

    def __init__(self, roi: Roi, direction: Direction) -> None:
        self.roi = roi
        self.direction = direction

    def along(self, x: float, y: float) -> float:
        """0 at the upstream edge of the ROI, 1 at its downstream edge (may leave 0..1 outside it)."""
        r = self.roi
        fraction = (y - r.y) / r.h if self.direction.vertical else (x - r.x) / r.w
        return 1.0 - fraction if self.direction.reversed else fraction

    def across(self, x: float, y: float) -> float:
        """``belt_x``: 0..1 across the belt inside the ROI, following the image axis."""
        if self.direction.vertical:
            return (x - self.roi.x) / self.roi.w
        return (y - self.roi.y) / self.roi.h

    def along_extent_px(self) -> int:
        """Length of the ROI along the direction of travel, in pixels."""
        return self.roi.h if self.direction.vertical else self.roi.w


class TruthItem(BaseModel):
    """One line of a belt clip's truth: an item that crossed the trigger line, and where and when.

    Written by the generator (``python -m sortline_dev.belt``) and read by the evaluator; ``seq`` is
    the first frame in which the centre of the item's box is at or past the trigger line.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    item_id: int
    label: str = Field(alias="class")
    cutout: str
    seq: int
    belt_x: float
    bbox: tuple[int, int, int, int]  # x, y, w, h in frame pixels at frame seq
    touching: bool = False


class ClipGeometry(BaseModel):
    """A clip's ``.clip.json``: what the pipeline must be told to look at it (and how it was made)."""

    model_config = ConfigDict(extra="allow")

    video: str
    width: int
    height: int
    fps: float
    frames: int
    direction: Direction
    trigger: float
    roi: Roi


def read_truth(path: Path) -> list[TruthItem]:
    """Truth JSON lines, one item a line."""
    return [TruthItem.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]


def write_truth(path: Path, items: list[TruthItem]) -> None:
    path.write_text("".join(item.model_dump_json(by_alias=True) + "\n" for item in items))


def clip_geometry_path(video: Path) -> Path:
    return video.with_suffix(".clip.json")


SEQ_GATE = 8  # an event more frames than this from an item's crossing is not that item
BELT_X_GATE = 0.12


@dataclass(frozen=True, slots=True)
class Observed:
    """The part of an item event that is scored."""

    seq: int
    belt_x: float


def match(truth: Sequence[TruthItem], events: Sequence[Observed]) -> list[tuple[int, int]]:
    """Pairs (truth index, event index), closest first; each item and each event used once."""
    candidates = sorted(
        (abs(t.seq - e.seq) / SEQ_GATE + abs(t.belt_x - e.belt_x) / BELT_X_GATE, ti, ei)
        for ti, t in enumerate(truth)
        for ei, e in enumerate(events)
        if abs(t.seq - e.seq) <= SEQ_GATE and abs(t.belt_x - e.belt_x) <= BELT_X_GATE
    )
    used_truth: set[int] = set()
    used_events: set[int] = set()
    pairs = []
    for _, ti, ei in candidates:
        if ti not in used_truth and ei not in used_events:
            used_truth.add(ti)
            used_events.add(ei)
            pairs.append((ti, ei))
    return sorted(pairs)
