"""Settings of the item pipeline and of a site's belt geometry, validated with clear errors.

:class:`ItemsSettings` says how to find items in the picture (defaults suit a camera looking down
at a belt, items moving top to bottom); :class:`SiteGeometry` says where things are on the line in
metres, so a bridge can time its air valves. Geometry is loaded from JSON, YAML or TOML.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sortline.belt import Direction, Roi


class ItemsSettings(BaseModel):
    """How the camera agent turns frames into items (one event per item at the trigger line)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    direction: Direction = Field(
        Direction.TOP_TO_BOTTOM,
        description="Which way the belt moves in the image: top-to-bottom, bottom-to-top, left-to-right or "
        "right-to-left.",
    )
    trigger: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="Trigger line along the belt inside the ROI: 0 upstream edge, 1 downstream.",
    )
    roi: Roi | None = Field(
        None, description="The belt's region of the frame in pixels; default: the whole frame."
    )
    detect_width: int = Field(
        320, ge=96, le=3840,
        description="Items are found on the ROI scaled down to at most this many pixels across its width "
        "(crops still come from the full frame).",
    )  # fmt: skip
    min_item_area: float = Field(
        0.0008,
        gt=0.0,
        lt=1.0,
        description="Smallest item, as a share of the ROI's area (specks below are noise).",
    )
    max_item_area: float = Field(
        0.25,
        gt=0.0,
        le=1.0,
        description="Largest item, as a share of the ROI's area (larger blobs are ignored).",
    )
    max_crops: int = Field(3, ge=1, le=16, description="Up to this many crops per item: its best views.")
    crop_margin: float = Field(
        0.1, ge=0.0, le=1.0, description="Crop margin around the item's box, as a share of the box's size."
    )
    warmup_frames: int = Field(
        15, ge=1, le=1000, description="Frames whose median makes the first model of the empty belt."
    )
    learning_rate: float = Field(
        0.03, gt=0.0, le=0.5, description="How fast the belt model follows slow changes where no item is."
    )
    threshold: float = Field(
        4.0,
        ge=1.0,
        le=20.0,
        description="A pixel is an item when it differs by this many standard deviations.",
    )
    min_contrast: float = Field(
        14.0, ge=1.0, le=255.0, description="...and by at least this many grey levels (colour distance)."
    )
    split_touching: bool = Field(
        True, description="Split blobs of touching items (distance transform + watershed)."
    )
    lost_frames: int = Field(
        20,
        ge=1,
        le=600,
        description="A track unseen for this many frames is over (it survives flicker and occlusion).",
    )

    @model_validator(mode="after")
    def _areas_ordered(self) -> ItemsSettings:
        if self.min_item_area >= self.max_item_area:
            raise ValueError(
                f"min_item_area {self.min_item_area} must be below max_item_area {self.max_item_area}"
            )
        return self

    def roi_for(self, width: int, height: int) -> Roi:
        """The ROI for frames of this size; a clear error when it does not fit them."""
        if self.roi is None:
            return Roi(x=0, y=0, w=width, h=height)
        if not self.roi.fits(width, height):
            r = self.roi
            raise ValueError(f"roi x={r.x} y={r.y} w={r.w} h={r.h} does not fit in a {width}x{height} frame")
        return self.roi


class SiteGeometry(BaseModel):
    """Where the line's parts are, in metres: enough to time an ejector from a trigger crossing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    belt_speed_m_s: float = Field(gt=0.0, le=10.0, description="Belt speed in metres per second.")
    pixels_per_metre: float = Field(gt=1.0, le=100_000.0, description="Image scale on the belt surface.")
    ejector_distance_m: float = Field(
        ge=0.0,
        le=50.0,
        description="Distance along the belt from the trigger line to the air valves, metres.",
    )

    def ejector_delay_s(self) -> float:
        """Seconds from an item crossing the trigger line to it reaching the valves."""
        return self.ejector_distance_m / self.belt_speed_m_s

    def belt_speed_px_s(self) -> float:
        return self.belt_speed_m_s * self.pixels_per_metre


class GeometryFileError(ValueError):
    """A geometry file is missing, unreadable or invalid; the message says which field and why."""


def load_site_geometry(path: Path) -> SiteGeometry:
    """Read a :class:`SiteGeometry` from ``.json``, ``.yaml``/``.yml`` or ``.toml``."""
    try:
        text = path.read_text()
    except OSError as error:
        raise GeometryFileError(f"cannot read {path}: {error.strerror}") from None
    try:
        data = _parse(path.suffix.lower(), text)
    except GeometryFileError:
        raise
    except ValueError as error:  # JSONDecodeError, TOMLDecodeError and YAMLError's wrapper
        raise GeometryFileError(f"{path} is not valid {path.suffix.lstrip('.').upper()}: {error}") from None
    if not isinstance(data, dict):
        raise GeometryFileError(f"{path} must hold a mapping of settings, not {type(data).__name__}")
    try:
        return SiteGeometry.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, p['loc'])) or 'file'}: {p['msg']}" for p in error.errors())
        raise GeometryFileError(f"{path}: {problems}") from None


def _parse(suffix: str, text: str) -> object:
    if suffix == ".json":
        return json.loads(text)
    if suffix == ".toml":
        return tomllib.loads(text)
    if suffix in (".yaml", ".yml"):
        import yaml  # only sites that write YAML need PyYAML

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(str(error)) from None
    raise GeometryFileError(f"geometry files are .json, .yaml, .yml or .toml, not {suffix or 'no suffix'}")
