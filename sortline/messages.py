"""Message schema v1: frame headers on ``sortline.frames`` and decision bodies on ``sortline.decisions``.

Frames carry the image as the body and their metadata as AMQP headers, so a broker-side tool can
route or inspect them without decoding the image. AMQP tables (as pika encodes them) carry no
floats, so ``captured_at_ns`` is an integer and ``belt_x`` travels as a decimal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from sortline.amqp_tables import RawTimestamp
from sortline.labels import BINS, MATERIALS

SCHEMA_VERSION = 1

#: Identifiers appear in routing keys and metric labels, so they are short and dot-free.
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]

#: Content types a worker accepts as frame bodies.
IMAGE_CONTENT_TYPES = ("image/jpeg", "image/png")

#: Header names on a dead letter, set by the worker that rejected the frame.
DEAD_LETTER_REASON_HEADER = "x-sortline-reason"
DEAD_LETTER_DETAIL_HEADER = "x-sortline-detail"
#: Header names on an item sent to review: why (abstained, disagreement, audit), the line's
#: decision (JSON), and the shadow candidate's decision where they disagreed (JSON).
REVIEW_WHY_HEADER = "x-sortline-review"
REVIEW_DECISION_HEADER = "x-sortline-decision"
REVIEW_SHADOW_HEADER = "x-sortline-shadow-decision"
#: Names of the frame's own headers a dead letter could not carry (too large, or not encodable).
DEAD_LETTER_DROPPED_HEADER = "x-sortline-dropped-headers"

#: Bounds of the integers a frame may carry: AMQP's signed 64-bit type, and a pixel coordinate.
INT64_MAX = 2**63 - 1
PIXEL_MAX = 1_000_000

#: A bbox value: x, y, width, height in pixels of the frame the crop came from.
Pixels = Annotated[int, Field(ge=0, le=PIXEL_MAX)]
#: A position across the belt, 0 (one edge) to 1 (the other).
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
#: The most views of one item a message may carry.
MAX_VIEWS = 8


class DeadLetterReason(StrEnum):
    """Why a frame could not be decided; the value is the header and the metric label."""

    MISSING_HEADERS = "missing-headers"
    INVALID_HEADERS = "invalid-headers"
    UNSUPPORTED_CONTENT_TYPE = "unsupported-content-type"
    EMPTY_BODY = "empty-body"
    OVERSIZED_BODY = "oversized-body"
    UNDECODABLE_IMAGE = "undecodable-image"
    IMAGE_TOO_LARGE = "image-too-large"
    EXPIRED = "expired"
    POISON = "poison"
    LINE_MISMATCH = "line-mismatch"
    CAMERA_NOT_ALLOWED = "camera-not-allowed"
    BAD_CAPTURE_TIME = "bad-capture-time"


class InvalidFrame(Exception):
    """A frame that can never be decided; it becomes a dead letter with this reason."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class FrameHeaders(BaseModel):
    """AMQP headers of one frame (message contract v1, README)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    line_id: Identifier
    camera_id: Identifier
    seq: int = Field(ge=0, le=INT64_MAX, description="Per-camera sequence number, from 0.")
    captured_at_ns: int = Field(
        gt=0, le=INT64_MAX, description="Capture time, integer nanoseconds since the epoch."
    )
    source: str | None = Field(
        None,
        max_length=1024,
        description="Replayed file, as a relative path; normalised (no '..', no leading '/', "
        "printable characters only) because decisions echo it to other tools.",
    )
    item_id: Identifier | None = None
    bbox: tuple[Pixels, Pixels, Pixels, Pixels] | None = Field(
        None, description="x, y, width, height in pixels."
    )
    belt_x: float | None = Field(None, ge=0.0, le=1.0, description="Lateral belt position, 0..1.")
    belt_span: tuple[Fraction, Fraction] | None = Field(
        None, description="Lateral extent of the item on the belt, (left, right) in 0..1."
    )
    deadline_ns: int | None = Field(
        None,
        gt=0,
        le=INT64_MAX,
        description="No decision may be published after this instant (epoch ns); set by the camera.",
    )
    eject_at_ns: int | None = Field(
        None, gt=0, le=INT64_MAX, description="When the item reaches the ejector row (epoch ns), items mode."
    )
    view_bytes: tuple[Annotated[int, Field(ge=1)], ...] | None = Field(
        None,
        min_length=1,
        max_length=MAX_VIEWS,
        description="An item's views: the body is this many encoded images back to back, of these sizes.",
    )

    @field_validator("captured_at_ns", "seq", "deadline_ns", "eject_at_ns", mode="before")
    @classmethod
    def _integers_only(cls, value: Any, info: ValidationInfo) -> Any:
        # bool is an int, strings coerce silently, a timestamp decodes to one: a typed header stays typed.
        if value is None and info.field_name in ("deadline_ns", "eject_at_ns"):
            return value  # optional; a header absent is left out of the table anyway
        if not isinstance(value, int) or isinstance(value, bool | RawTimestamp):
            raise ValueError(f"must be an integer, got {type(value).__name__}")
        return value

    @field_validator("source")
    @classmethod
    def _relative_path(cls, value: str | None) -> str | None:
        return None if value is None else normalise_relative_path(value)

    @field_validator("belt_span")
    @classmethod
    def _ordered_span(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and value[0] > value[1]:
            raise ValueError("left edge right of the right edge")
        return value

    def to_amqp(self) -> dict[str, Any]:
        """Headers table for pika (floats become decimals, absent fields are left out)."""
        table = self.model_dump(exclude_none=True)
        if self.bbox is not None:
            table["bbox"] = list(self.bbox)
        if self.belt_x is not None:
            table["belt_x"] = Decimal(f"{self.belt_x:.6f}")
        if self.belt_span is not None:
            table["belt_span"] = [Decimal(f"{edge:.6f}") for edge in self.belt_span]
        if self.view_bytes is not None:
            table["view_bytes"] = list(self.view_bytes)
        return table

    @classmethod
    def from_amqp(cls, headers: Mapping[str, Any] | None) -> FrameHeaders:
        """Parse and validate a frame's headers, raising :class:`InvalidFrame` with a reason."""
        if not headers:
            raise InvalidFrame(DeadLetterReason.MISSING_HEADERS, "frame has no headers")
        missing = [name for name in ("line_id", "camera_id", "seq", "captured_at_ns") if name not in headers]
        if missing:
            raise InvalidFrame(DeadLetterReason.MISSING_HEADERS, f"missing {', '.join(missing)}")
        values = {key: _from_amqp_value(value) for key, value in headers.items()}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise InvalidFrame(DeadLetterReason.INVALID_HEADERS, _summarise(error)) from None


def normalise_relative_path(text: str) -> str:
    """``text`` as a relative POSIX path that cannot leave its folder: ``../../etc/passwd`` -> ``etc/passwd``.

    Separators are unified, empty, ``.`` and ``..`` parts dropped, control characters removed.
    """
    printable = "".join(char for char in text.replace("\\", "/") if char.isprintable())
    return "/".join(part for part in printable.split("/") if part not in ("", ".", ".."))


def _from_amqp_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, Decimal):
        return float(value)
    return value


def _summarise(error: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:3]]
    return "; ".join(parts)


def ns_to_iso(epoch_ns: int) -> str:
    """Epoch nanoseconds as an ISO 8601 UTC timestamp with microseconds."""
    return datetime.fromtimestamp(epoch_ns / 1e9, tz=UTC).isoformat(timespec="microseconds")


class DecisionMessage(BaseModel):
    """Body of one message on ``sortline.decisions`` (JSON)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    frame_id: str = Field(min_length=1, max_length=128)
    line_id: Identifier
    camera_id: Identifier
    seq: int = Field(ge=0)
    source: str | None = None
    item_id: str | None = None
    bbox: tuple[int, int, int, int] | None = Field(None, description="The item's box in its frame, pixels.")
    belt_x: float | None = Field(None, ge=0.0, le=1.0, description="Lateral belt position of its centre.")
    belt_span: tuple[float, float] | None = Field(None, description="Its lateral extent, (left, right).")
    views: int = Field(1, ge=1, le=MAX_VIEWS, description="Images of the item the decision combines.")
    eject_at: str | None = Field(None, description="ISO 8601 UTC time it reaches the ejector row.")
    eject_at_ns: int | None = Field(None, gt=0, description="The same, epoch nanoseconds.")
    bin: str
    confidence: float = Field(ge=0.0, le=1.0)
    p_organic: float = Field(ge=0.0, le=1.0)
    p_hazard: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="The hazard check's probability; left out of the JSON for models without one.",
    )
    material: str | None = Field(
        None, description="Stage-2 answer; None when stage 1 said organic or the item is a hazard."
    )
    material_probs: dict[str, float]
    residual_reason: str | None = None
    residual_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="low-confidence: the model's threshold the top material probability missed.",
    )
    residual_detail: str | None = Field(
        None, max_length=200, description="Why residual, in words: 'top material plastic 0.999418 < 0.9995'."
    )
    model_version: str
    captured_at: str = Field(description="ISO 8601 UTC capture time.")
    captured_at_ns: int = Field(gt=0)
    decided_at: str = Field(description="ISO 8601 UTC decision time.")
    latency_ms: float = Field(description="Capture to decision, milliseconds.")
    redelivered: bool = Field(False, description="The frame was delivered before (possible duplicate).")

    @field_validator("bin")
    @classmethod
    def _known_bin(cls, value: str) -> str:
        if value not in BINS:
            raise ValueError(f"unknown bin {value!r}")
        return value

    @field_validator("material_probs")
    @classmethod
    def _all_materials(cls, value: dict[str, float]) -> dict[str, float]:
        if set(value) != set(MATERIALS):
            raise ValueError(f"material_probs must name exactly {', '.join(MATERIALS)}")
        return value

    def to_json(self) -> bytes:
        """The body; a decision of a model without a hazard output is byte for byte what it was before."""
        return self.model_dump_json(exclude={"p_hazard"} if self.p_hazard is None else None).encode()

    @classmethod
    def from_json(cls, body: bytes | str) -> DecisionMessage:
        return cls.model_validate(json.loads(body))


class ModelPromoted(BaseModel):
    """Published to ``sortline.models`` (fanout) when a model directory is promoted.

    Workers reload the directory they serve (their ``--model``) and swap the model in between two
    batches when it loads and passes its sha256 check; otherwise they keep the old one. The
    directory is the source of truth and the event a trigger: its version and sha256 go to the
    worker's log, which warns when what it loaded is not what was announced (a copy that has not
    caught up, or a worker pointed at another directory).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = SCHEMA_VERSION
    version: str = Field(min_length=1, max_length=200)
    onnx_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    promoted_at: str = Field(description="ISO 8601, UTC.")

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()
