"""Camera agent configuration: flags override SORTLINE_* environment variables override defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from camera_agent.items.settings import ItemsSettings
from sortline.belt import Direction, Roi
from sortline.messages import MAX_VIEWS, Identifier
from sortline.settings import METRICS_PORT_HELP, SortlineSettings

#: Frame mode on a live source: a decision later than this is of no use to an ejector.
LIVE_DEADLINE_MS = 3000


class AgentSettings(SortlineSettings):
    """camera-agent: capture frames from a camera, video, stream or image folder and publish them."""

    source: str = Field(
        min_length=1,
        description="Camera index (0), video file, rtsp:// or http(s):// stream, or a folder of images "
        "(replayed recursively in sorted order).",
    )
    line_id: Identifier = Field("line-1", description="Sorting line this camera watches.")
    camera_id: Identifier = Field("cam-1", description="This camera's id, unique within its line.")
    fps: float = Field(
        10.0,
        ge=0.0,
        le=1000.0,
        description="Frames per second to publish; 0 = as fast as the broker takes them.",
    )
    loop: bool = Field(False, description="Replay a file or folder forever instead of exiting at its end.")
    jpeg_quality: int = Field(90, ge=30, le=100, description="JPEG quality of published frames.")
    deadline_ms: int | None = Field(
        None,
        ge=0,
        le=3_600_000,
        description="A frame not decided within this many ms after capture is worthless: it expires in "
        "the queue and workers refuse it. 0 = no deadline. Default: 3000 for cameras and streams, none "
        "for replayed files (a replay at --fps 0 queues on purpose).",
    )
    source_give_up_s: float = Field(
        600.0,
        ge=0.0,
        le=30 * 86_400,
        description="A camera or stream that stays unreachable this long ends the agent (exit 3); until "
        "then it is reopened with backoff. 0 = never give up.",
    )
    buffer_frames: int = Field(
        600,
        ge=1,
        le=1_000_000,
        description="Frames held while the broker is slow or away; a live camera then drops the oldest.",
    )

    def effective_deadline_ms(self, live: bool) -> int:
        """The deadline in ms (0: none), with the default that suits the source."""
        if self.deadline_ms is not None:
            return self.deadline_ms
        return LIVE_DEADLINE_MS if live else 0

    mode: Literal["frame", "items"] = Field(
        "frame",
        description="frame: every frame is one message (one-item stations, folder replays); items: find and "
        "track items on the belt and publish each once, when it crosses the trigger line, with its views.",
    )
    belt_direction: Direction = Field(
        Direction.TOP_TO_BOTTOM,
        description="items: which way the belt moves in the image (top-to-bottom, bottom-to-top, "
        "left-to-right, right-to-left).",
    )
    trigger: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="items: the trigger line along the belt, 0 upstream edge .. 1 downstream.",
    )
    roi: tuple[int, int, int, int] | None = Field(
        None,
        json_schema_extra={"metavar": "X,Y,W,H"},
        description="items: the belt's region of the frame as x,y,w,h in pixels; default the whole frame.",
    )
    max_crops: int = Field(
        3, ge=1, le=MAX_VIEWS, description="items: views per item (its sharpest whole crops along its path)."
    )
    site: Path | None = Field(
        None,
        description="items: the site's geometry file (.toml/.json/.yaml: belt_speed_m_s, pixels_per_metre, "
        "ejector_distance_m); decisions then say when each item reaches the ejectors, and that instant, less "
        "--eject-margin-ms, is the item's deadline.",
    )
    eject_margin_ms: float = Field(
        20.0, ge=0.0, le=10_000.0, description="items: how long before its eject time a decision must be out."
    )
    annotate: Path | None = Field(
        None, description="items: also write the frames with boxes, ids and decided bins to this .mp4."
    )
    live_port: int = Field(
        0, ge=0, le=65535, description="items: serve a live view of the belt on this port (0: off)."
    )

    def items_settings(self) -> ItemsSettings:
        roi = Roi(x=self.roi[0], y=self.roi[1], w=self.roi[2], h=self.roi[3]) if self.roi else None
        return ItemsSettings(
            direction=self.belt_direction, trigger=self.trigger, roi=roi, max_crops=self.max_crops
        )

    metrics_port: int = Field(9101, ge=0, le=65535, description=METRICS_PORT_HELP)
