"""Settings of the belt clip generator (flags override SORTLINE_* environment variables override defaults)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from sortline.belt import Direction
from sortline.settings import SortlineSettings


class BeltClipSettings(BaseSettings):
    """python -m sortline_dev.belt: render waste items riding a conveyor belt to an MP4 and its truth."""

    model_config = SortlineSettings.model_config  # same env prefix and flag style as every CLI

    out: Path = Field(description="MP4 file to write (OpenCV VideoWriter, mp4v).")
    truth: Path | None = Field(
        None, description="Truth JSON lines, one item a line; default: OUT with suffix .truth.jsonl."
    )
    width: int = Field(1280, ge=160, le=3840, description="Frame width in pixels.")
    height: int = Field(720, ge=90, le=2160, description="Frame height in pixels.")
    fps: float = Field(30.0, ge=5.0, le=120.0, description="Frames per second of the clip.")
    seconds: float = Field(12.0, gt=0.0, le=600.0, description="Length of the clip in seconds.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Random seed: the same seed gives the same clip.")
    direction: Direction = Field(
        Direction.TOP_TO_BOTTOM,
        description="Which way the belt moves in the image: top-to-bottom, bottom-to-top, left-to-right or "
        "right-to-left.",
    )
    trigger: float = Field(
        0.5, gt=0.0, lt=1.0, description="Trigger line along the belt (0 = upstream edge, 1 = downstream)."
    )
    items_per_second: float = Field(
        1.5, ge=0.0, le=20.0, description="Mean rate at which items arrive (0: an empty belt)."
    )
    touching: float = Field(
        0.0, ge=0.0, le=1.0, description="Share of arrivals that come as a pair of touching items."
    )
    belt_speed: float = Field(
        0.55, gt=0.05, le=3.0, description="Belt speed in belt lengths (visible along-extent) per second."
    )
    speed_jitter: float = Field(
        0.06, ge=0.0, le=0.3, description="Items slip: each moves at belt speed times 1 +- up to this."
    )
    min_size: float = Field(
        0.09, gt=0.02, le=0.5, description="Smallest item's long side, share of belt width."
    )
    max_size: float = Field(
        0.2, gt=0.02, le=0.6, description="Largest item's long side, share of belt width."
    )
    max_spin: float = Field(
        25.0, ge=0.0, le=360.0, description="Fastest item rotation in degrees per second."
    )
    belt_margin: float = Field(
        0.07, ge=0.0, le=0.3, description="Share of the frame on each side of the belt showing its rails."
    )
    shadows: bool = Field(True, description="Cast soft drop shadows under the items.")
    light_drift: float = Field(
        0.12, ge=0.0, le=0.5, description="Amplitude of the slow lighting drift (share of the brightness)."
    )
    exposure: float = Field(
        0.5, ge=0.0, le=1.0, description="Exposure time as a share of the frame interval (motion blur)."
    )
    noise: float = Field(2.5, ge=0.0, le=30.0, description="Sensor noise, standard deviation in grey levels.")
    classes: list[str] = Field(
        default_factory=list, description="Only these classes (cut-out folders); default: all of them."
    )
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$", description="Logging level.")

    @model_validator(mode="after")
    def _sizes_ordered(self) -> BeltClipSettings:
        if self.min_size > self.max_size:
            raise ValueError(f"min-size {self.min_size} is larger than max-size {self.max_size}")
        return self

    def truth_path(self) -> Path:
        return self.truth or self.out.with_suffix(".truth.jsonl")

    @property
    def frame_count(self) -> int:
        return max(1, round(self.seconds * self.fps))
