"""Where the valves are: valve bars along the belt, each with the bins it ejects and its coils.

Distances are measured along the belt from the camera's trigger line (where an item's crossing
time is taken), lateral positions as fractions of the belt's width as the camera sees it (0 one
edge, 1 the other), so the camera and the bridge agree without sharing pixels.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sortline.labels import BINS
from sortline.messages import Identifier

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class GeometryError(ValueError):
    """A geometry file that cannot be read or does not describe a valve bar that can work."""


class ValveBar(BaseModel):
    """One row of air valves across the belt, driven by consecutive coils of the PLC."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Identifier = Field(description="Name of the bar in metrics and logs.")
    bins: tuple[str, ...] = Field(min_length=1, description="Bins whose items this bar ejects.")
    distance_m: float = Field(gt=0.0, le=100.0, description="From the trigger line to the valves, metres.")
    valves: int = Field(ge=1, le=1024, description="Valves across the bar, equally spaced.")
    span: tuple[Fraction, Fraction] = Field(
        (0.0, 1.0), description="The part of the belt's width the bar covers, (left, right) in 0..1."
    )
    first_coil: int = Field(0, ge=0, le=65535, description="Coil address of the leftmost valve.")
    pulse_ms: float = Field(20.0, ge=1.0, le=1000.0, description="How long a valve stays open per item.")
    valve_delay_ms: float = Field(
        0.0,
        ge=0.0,
        le=500.0,
        description="Time from setting a coil to air at the nozzle; coils are set this much earlier.",
    )

    @field_validator("bins")
    @classmethod
    def _known_bins(cls, bins: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in bins if name not in BINS]
        if unknown:
            raise ValueError(f"unknown bins {unknown}; bins are {', '.join(BINS)}")
        return bins

    @model_validator(mode="after")
    def _usable(self) -> ValveBar:
        if self.span[0] >= self.span[1]:
            raise ValueError(f"span {self.span}: the left edge must be left of the right edge")
        if self.first_coil + self.valves > 65536:
            raise ValueError(f"coils {self.first_coil}..{self.first_coil + self.valves - 1} exceed 65535")
        return self

    @property
    def coils(self) -> range:
        return range(self.first_coil, self.first_coil + self.valves)

    def valves_under(self, left: float, right: float) -> list[int]:
        """Indices of the valves whose lane overlaps [left, right] (belt fractions)."""
        low, high = max(left, self.span[0]), min(right, self.span[1])
        if low > high:
            return []  # the item passes beside this bar
        width = (self.span[1] - self.span[0]) / self.valves
        first = min(self.valves - 1, int((low - self.span[0]) / width))
        last = min(self.valves - 1, int((high - self.span[0]) / width))
        return list(range(first, last + 1))


class EjectorGeometry(BaseModel):
    """A line's belt speed and its valve bars."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    belt_speed_mps: float = Field(gt=0.0, le=20.0, description="Belt speed, metres per second.")
    bars: tuple[ValveBar, ...] = Field(min_length=1, description="The valve bars of the line.")

    @model_validator(mode="after")
    def _distinct(self) -> EjectorGeometry:
        ids = [bar.id for bar in self.bars]
        if len(set(ids)) != len(ids):
            raise ValueError(f"bar ids must be unique: {ids}")
        used: dict[int, str] = {}
        for bar in self.bars:
            for coil in bar.coils:
                if coil in used:
                    raise ValueError(f"coil {coil} belongs to both {used[coil]} and {bar.id}")
                used[coil] = bar.id
        return self

    def travel_ns(self, bar: ValveBar) -> int:
        """How long an item takes from the trigger line to ``bar``."""
        return round(bar.distance_m / self.belt_speed_mps * 1e9)


def load_geometry(path: Path) -> EjectorGeometry:
    """A geometry file (``.toml`` or ``.json``), or :class:`GeometryError` saying what is wrong."""
    try:
        text = path.read_text()
    except OSError as error:
        raise GeometryError(f"cannot read {path}: {error.strerror}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise GeometryError(f"{path} is not valid {path.suffix[1:] or 'JSON'}: {error}") from None
    try:
        return EjectorGeometry.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'geometry'}: {e['msg']}" for e in error.errors()
        )
        raise GeometryError(f"{path}: {problems}") from None
