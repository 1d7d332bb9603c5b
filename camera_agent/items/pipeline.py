"""Frames in, one event per item out: the belt model, blobs, tracks, the trigger line and crops.

Pure computation (no broker, no capture): feed each frame with its index and capture time to
:meth:`ItemsPipeline.process` and publish the :class:`ItemEvent` values it returns. Items are found
on the ROI scaled down to ``detect_width`` (cheap enough for one core at 1280x720, 30 fps); boxes
and crops are in full-frame pixels.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field

import cv2
import numpy as np

from camera_agent.items.background import BeltBackground
from camera_agent.items.crops import CropSelector, ItemCrop, sharpness
from camera_agent.items.detect import clean, find_blobs
from camera_agent.items.settings import ItemsSettings
from camera_agent.items.tracking import BoxTracker, ByteTrackBoxes, TrackedBox
from camera_agent.items.trigger import crossed, crossing_time_ns
from sortline.belt import BeltFrame, Roi

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels
FRAGMENT_SHARE = 0.6  # a new track's box this much inside a live track's box broke off from it
DUPLICATE_SHARE = 0.8  # a crossing this much inside a just-counted item's box is a piece of it
MIN_TRAVEL = 0.05  # share of the ROI along the belt a track must have moved before it counts
FRAGMENT_MIN_FRAMES = 6  # ...and counts only once seen in this many frames (one item's blob split briefly)


@dataclass(frozen=True, slots=True, eq=False)
class ItemEvent:
    """One item that crossed the trigger line."""

    item_id: str  # unique per pipeline run: "<run prefix>-<n>"
    track_id: int
    seq: int  # index of the frame in which its centre was first seen at or past the line
    captured_at_ns: int  # capture time of that frame
    crossed_at_ns: int  # interpolated instant the centre reached the line
    bbox: Box  # in frame ``seq``, frame pixels
    belt_x: float  # 0..1 across the belt inside the ROI (see geometry: follows the image axis)
    speed_px_s: float  # along the belt, measured on its track
    frames_seen: int
    crops: tuple[ItemCrop, ...]  # up to max_crops best views, best first


@dataclass(slots=True)
class PipelineStats:
    frames: int = 0  # frames given to process()
    warmup_frames: int = 0  # of those, spent building the first belt model
    skipped_frames: int = 0  # frame indices that never arrived (gaps in seq)
    items: int = 0  # events emitted
    lost_before_trigger: int = 0  # tracks that ended before reaching the line
    appeared_past_trigger: int = 0  # tracks first seen already past the line (never counted)
    suppressed_duplicates: int = 0  # crossings of a second track on an item already counted


@dataclass(frozen=True, slots=True)
class TrackView:
    """What the annotator draws for a live track."""

    track_id: int
    item_id: str | None
    bbox: Box


@dataclass(frozen=True, slots=True)
class _Crossing:
    """Where and when a track's centre reached the trigger line, and its observation before."""

    seq: int
    now_ns: int
    bbox: Box
    along: float
    previous_along: float
    previous_ns: int


@dataclass(slots=True)
class _Track:
    track_id: int
    first_seq: int
    first_ns: int
    first_centre: tuple[float, float]
    first_along: float
    crops: CropSelector
    last_seq: int = -1
    last_ns: int = 0
    last_along: float = 0.0
    last_bbox: Box = (0, 0, 0, 0)
    frames_seen: int = 0
    item_id: str | None = None
    parent: int | None = None  # the track this one broke off from, if any
    crossing: _Crossing | None = None

    def velocity(self) -> tuple[float, float]:
        """Pixels per second from its first sighting to its last."""
        seconds = max((self.last_ns - self.first_ns) / 1e9, 1e-6)
        centre = _centre(self.last_bbox)
        return (centre[0] - self.first_centre[0]) / seconds, (centre[1] - self.first_centre[1]) / seconds


@dataclass(slots=True)
class _Emitted:
    seq: int
    ns: int
    bbox: Box
    velocity: tuple[float, float] = field(default=(0.0, 0.0))


class ItemsPipeline:
    """Turns a camera's frames into item events; one instance per camera, frames in order."""

    def __init__(self, settings: ItemsSettings, fps: float = 30.0, tracker: BoxTracker | None = None,
                 id_prefix: str | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.fps = fps
        self.stats = PipelineStats()
        self.tracks: list[TrackView] = []
        self._tracker = tracker or ByteTrackBoxes(fps, settings.lost_frames)
        self._prefix = id_prefix or secrets.token_hex(4)
        self._background = BeltBackground(
            settings.warmup_frames,
            settings.learning_rate,
            settings.threshold,
            settings.min_contrast,
            along_axis=0 if settings.direction.vertical else 1,
        )
        self._live: dict[int, _Track] = {}
        self._emitted: list[_Emitted] = []
        self._roi: Roi | None = None
        self._last_seq: int | None = None

    def process(self, frame: np.ndarray, seq: int, captured_at_ns: int) -> list[ItemEvent]:
        """Look at one BGR frame; returns the items whose centre crossed the trigger line in it."""
        roi = self._start(frame)
        self._count(seq)
        small = cv2.resize(frame[roi.y : roi.y + roi.h, roi.x : roi.x + roi.w], self._small_size,
                           interpolation=cv2.INTER_AREA)  # fmt: skip
        if not self._background.ready:
            self.stats.warmup_frames += 1
            self._background.warm_up(small)
            return []
        mask = clean(self._background.foreground(small), self._close_px)
        blobs = find_blobs(mask, self._min_area, self._max_area, self.settings.split_touching)
        self._background.learn(cv2.dilate(mask, self._grow))
        boxes = np.array([b.box for b in blobs], np.float32).reshape(-1, 4)
        tracked = self._tracker.update(boxes, captured_at_ns / 1e9)
        events = self._observe(frame, cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), seq, captured_at_ns, tracked)
        self._expire(seq)
        return events

    def finish(self) -> PipelineStats:
        """End of the video: close every open track (counting those lost before the line)."""
        for track in list(self._live.values()):
            self._close(track)
        self._live.clear()
        return self.stats

    def _start(self, frame: np.ndarray) -> Roi:
        """On the first frame: ROI, detection scale and the pixel sizes that follow from them."""
        if self._roi is not None:
            if frame.shape[:2] != self._frame_shape:
                h, w = self._frame_shape
                raise ValueError(f"frame size changed from {w}x{h} to {frame.shape[1]}x{frame.shape[0]}: "
                                 "start a new ItemsPipeline for the new stream")  # fmt: skip
            return self._roi
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frames must be BGR (H x W x 3), got shape {frame.shape}")
        roi = self.settings.roi_for(frame.shape[1], frame.shape[0])
        self._scale = min(1.0, self.settings.detect_width / roi.w)
        self._small_size = (max(8, round(roi.w * self._scale)), max(8, round(roi.h * self._scale)))
        small_area = self._small_size[0] * self._small_size[1]
        self._min_area = max(4, round(self.settings.min_item_area * small_area))
        self._max_area = round(self.settings.max_item_area * small_area)
        self._close_px = max(3, round(0.011 * self._small_size[0]))
        self._grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (self._close_px,) * 2)
        self._belt = BeltFrame(roi, self.settings.direction)
        self._roi = roi
        self._frame_shape = frame.shape[:2]
        log.info("items: roi %s, detecting at %dx%d", roi, *self._small_size)
        return roi

    def _count(self, seq: int) -> None:
        if self._last_seq is not None and seq > self._last_seq + 1:
            self.stats.skipped_frames += seq - self._last_seq - 1
        self._last_seq = seq
        self.stats.frames += 1

    def _to_frame(self, box: tuple[float, float, float, float]) -> Box:
        assert self._roi is not None
        x0, y0, x1, y1 = (v / self._scale for v in box)
        return round(x0) + self._roi.x, round(y0) + self._roi.y, round(x1 - x0), round(y1 - y0)

    def _observe(self, frame: np.ndarray, gray: np.ndarray, seq: int, now_ns: int,
                 tracked: list[TrackedBox]) -> list[ItemEvent]:  # fmt: skip
        boxes = [self._to_frame(t.box) for t in tracked]
        events = []
        for index, (item, bbox) in enumerate(zip(tracked, boxes, strict=True)):
            crowded = any(_overlap(bbox, other) for j, other in enumerate(boxes) if j != index)
            x0, y0, x1, y1 = (max(0, round(v)) for v in item.box)
            track = self._track(item.track_id, bbox, seq, now_ns)
            track.crops.offer(frame, seq, bbox, sharpness(gray[y0:y1, x0:x1]), crowded)
            along = self._belt.along(*_centre(bbox))
            if (
                track.frames_seen
                and track.crossing is None
                and crossed(track.last_along, along, self.settings.trigger)
            ):
                track.crossing = _Crossing(seq, now_ns, bbox, along, track.last_along, track.last_ns)
            if track.crossing is not None and track.item_id is None and self._may_emit(track, seq, along):
                event = self._emit(track, now_ns)
                if event is not None:
                    events.append(event)
            track.last_seq, track.last_ns, track.last_along, track.last_bbox = seq, now_ns, along, bbox
            track.frames_seen += 1
        self.tracks = [
            TrackView(t.track_id, self._live[t.track_id].item_id, b)
            for t, b in zip(tracked, boxes, strict=True)
        ]
        return events

    def _track(self, track_id: int, bbox: Box, seq: int, now_ns: int) -> _Track:
        track = self._live.get(track_id)
        if track is None:
            centre = _centre(bbox)
            track = _Track(track_id, seq, now_ns, centre, self._belt.along(*centre),
                           CropSelector(self.settings.max_crops, self.settings.crop_margin))  # fmt: skip
            track.parent = self._parent_of(bbox, seq)
            self._live[track_id] = track
        return track

    def _parent_of(self, bbox: Box, seq: int) -> int | None:
        """The live track whose last box holds most of a new track's first box: it broke off from it."""
        for other in self._live.values():
            if seq - other.last_seq <= 2 and _share_inside(bbox, other.last_bbox) >= FRAGMENT_SHARE:
                return other.track_id
        return None

    def _is_fragment(self, track: _Track, seq: int) -> bool:
        """A piece broken off a live track (a split blob of one item), not an item of its own."""
        parent = self._live.get(track.parent) if track.parent is not None else None
        return parent is not None and seq - parent.last_seq <= 2

    def _may_emit(self, track: _Track, seq: int, along: float) -> bool:
        """Items ride the belt: a track counts once it has moved with it (a ghost of the start-up
        model or a flickering speck does not), and one that broke off a live track once it has been
        seen in enough frames to be an item of its own. Until then its crossing waits."""
        if along - track.first_along < MIN_TRAVEL:
            return False
        return not self._is_fragment(track, seq) or track.frames_seen + 1 >= FRAGMENT_MIN_FRAMES

    def _emit(self, track: _Track, now_ns: int) -> ItemEvent | None:
        """The event of a track's crossing (emitted late if the track had to prove itself first)."""
        crossing = track.crossing
        assert crossing is not None
        centre = _centre(crossing.bbox)
        velocity = track.velocity()
        if self._already_counted(crossing.bbox, crossing.now_ns):
            self.stats.suppressed_duplicates += 1
            track.item_id = "duplicate"
            return None
        self.stats.items += 1
        track.item_id = f"{self._prefix}-{self.stats.items}"
        self._emitted.append(_Emitted(crossing.seq, crossing.now_ns, crossing.bbox, velocity))
        trigger = self.settings.trigger
        return ItemEvent(
            item_id=track.item_id, track_id=track.track_id, seq=crossing.seq, captured_at_ns=crossing.now_ns,
            crossed_at_ns=crossing_time_ns(crossing.previous_along, crossing.previous_ns, crossing.along,
                                           crossing.now_ns, trigger),
            bbox=crossing.bbox, belt_x=round(float(self._belt.across(*centre)), 4),
            speed_px_s=round(float(np.hypot(*velocity)), 1), frames_seen=track.frames_seen + 1,
            crops=track.crops.best(),
        )  # fmt: skip

    def _already_counted(self, bbox: Box, now_ns: int) -> bool:
        """A crossing mostly inside the box of an item just counted (moved on at its speed), or
        holding most of it, is that item seen again: a piece of it, or it after a lost track."""
        horizon_ns = self.settings.lost_frames / self.fps * 1e9
        self._emitted = [e for e in self._emitted if now_ns - e.ns <= horizon_ns]
        centre = _centre(bbox)
        for earlier in self._emitted:
            seconds = (now_ns - earlier.ns) / 1e9
            x, y, w, h = earlier.bbox
            moved = (round(x + earlier.velocity[0] * seconds), round(y + earlier.velocity[1] * seconds), w, h)
            if (_inside(centre, moved) and _inside(_centre(moved), bbox)) or _share_inside(
                bbox, moved
            ) >= DUPLICATE_SHARE:
                return True
        return False

    def _expire(self, seq: int) -> None:
        for track_id in [
            t for t, track in self._live.items() if seq - track.last_seq > self.settings.lost_frames
        ]:
            self._close(self._live.pop(track_id))

    def _close(self, track: _Track) -> None:
        if (
            track.item_id is not None
            or track.frames_seen < 2
            or track.last_along - track.first_along < MIN_TRAVEL
        ):
            return  # counted already, or never an item: seen once, or not moving with the belt
        if track.crossing is not None:  # a fragment that never proved itself
            self.stats.suppressed_duplicates += 1
            return
        if track.first_along >= self.settings.trigger:
            self.stats.appeared_past_trigger += 1
        elif track.last_along < self.settings.trigger:
            self.stats.lost_before_trigger += 1


def _centre(bbox: Box) -> tuple[float, float]:
    x, y, w, h = bbox
    return x + w / 2, y + h / 2


def _inside(point: tuple[float, float], bbox: tuple[float, float, float, float]) -> bool:
    x, y, w, h = bbox
    return x <= point[0] <= x + w and y <= point[1] <= y + h


def _share_inside(a: Box, b: Box) -> float:
    """How much of box ``a``'s area lies inside box ``b``."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, w) * max(0, h) / max(1, a[2] * a[3])


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]
