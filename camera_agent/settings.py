"""Camera agent configuration: flags override SORTLINE_* environment variables override defaults."""

from __future__ import annotations

from pydantic import Field

from sortline.messages import Identifier
from sortline.settings import SortlineSettings

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

    metrics_port: int = Field(9101, ge=0, le=65535, description="Port of /metrics; 0 disables it.")
