"""Turn encoded frames into model input: size checks before decoding, reduced decoding, batching.

The worker serves with these functions and the trainer calibrates and evaluates with them, so the
figures the trainer reports are the figures of the pixels the worker really feeds the model. The
resize rule and the normalisation are the ones the manifest's input spec names.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from sortline.manifest import InputSpec
from sortline.messages import DeadLetterReason, InvalidFrame

#: Default cap on the pixels an image header may claim, for the worker's frames and the trainer's files.
MAX_PIXELS = 40_000_000

_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_dimensions(body: bytes) -> tuple[int, int] | None:
    """(width, height) read from a JPEG or PNG header without decoding; None if not found."""
    if body.startswith(_PNG_SIGNATURE) and len(body) >= 24:
        width, height = struct.unpack(">II", body[16:24])
        return width, height
    if not body.startswith(b"\xff\xd8"):
        return None
    offset = 2
    while offset + 4 <= len(body):
        if body[offset] != 0xFF:
            return None
        marker = body[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            offset += 2
            continue
        (length,) = struct.unpack(">H", body[offset + 2 : offset + 4])
        if marker in _JPEG_SOF_MARKERS and offset + 9 <= len(body):
            height, width = struct.unpack(">HH", body[offset + 5 : offset + 9])
            return width, height
        offset += 2 + length
    return None


def _reduced_read_flag(width: int, height: int, target: int) -> int:
    """The coarsest OpenCV reduced-decode flag that still leaves the short side >= target."""
    for factor, flag in (
        (8, cv2.IMREAD_REDUCED_COLOR_8),
        (4, cv2.IMREAD_REDUCED_COLOR_4),
        (2, cv2.IMREAD_REDUCED_COLOR_2),
    ):
        if min(width, height) // factor >= target:
            return flag
    return cv2.IMREAD_COLOR


def check_encoded(body: bytes, *, max_pixels: int) -> tuple[int, int]:
    """(width, height) of an encoded frame from its header, or raise :class:`InvalidFrame`.

    Run before any decoder sees the bytes, so that a frame claiming 60000 x 60000 pixels is
    refused before memory is allocated for it.
    """
    if not body:
        raise InvalidFrame(DeadLetterReason.EMPTY_BODY, "frame body is empty")
    dimensions = image_dimensions(body)
    if dimensions is None:
        raise InvalidFrame(DeadLetterReason.UNDECODABLE_IMAGE, "no JPEG or PNG header found")
    width, height = dimensions
    if width == 0 or height == 0:
        raise InvalidFrame(DeadLetterReason.UNDECODABLE_IMAGE, f"header says {width}x{height}")
    if width * height > max_pixels:
        raise InvalidFrame(DeadLetterReason.IMAGE_TOO_LARGE, f"{width}x{height} exceeds {max_pixels} pixels")
    return width, height


def decode_frame(body: bytes, *, target_size: int, max_pixels: int) -> np.ndarray:
    """Decode an encoded frame to a BGR uint8 image, or raise :class:`InvalidFrame`.

    The header is checked first (:func:`check_encoded`); large frames are decoded at 1/2, 1/4 or
    1/8 scale, which libjpeg does in its IDCT at a fraction of the cost of a full decode and resize.
    """
    width, height = check_encoded(body, max_pixels=max_pixels)
    flag = _reduced_read_flag(width, height, target_size) if body[:2] == b"\xff\xd8" else cv2.IMREAD_COLOR
    image = cv2.imdecode(np.frombuffer(body, dtype=np.uint8), flag)
    if image is None or image.size == 0:
        raise InvalidFrame(
            DeadLetterReason.UNDECODABLE_IMAGE, f"OpenCV could not decode the {width}x{height} image"
        )
    return image


def shrinks(height: int, width: int, spec: InputSpec) -> bool:
    """The resize rule of ``spec.interpolation``: area averaging when the short side shrinks.

    INTER_AREA averages every source pixel when shrinking (no aliasing); INTER_LINEAR is the right
    filter when enlarging. The worker's GPU decoder applies the same rule with its own matrices.
    """
    return min(height, width) > spec.size


def resize_for_model(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    """BGR image of any size to the model's RGB size x size uint8 image."""
    interpolation = cv2.INTER_AREA if shrinks(*image.shape[:2], spec) else cv2.INTER_LINEAR
    resized = cv2.resize(image, (spec.size, spec.size), interpolation=interpolation)
    return cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)


def to_model_input(images: list[np.ndarray], spec: InputSpec) -> np.ndarray:
    """Stack resized RGB uint8 images into a normalised float32 NCHW batch.

    ``(x / pixel_scale - mean) / std`` (the input spec's normalisation) is folded into one
    multiply-add per channel, written straight into the NCHW output: one pass instead of five (cast,
    scale, subtract, divide, transpose), about 8x less CPU on the inference thread, with the same
    floats to within 1e-6.
    """
    std = np.asarray(spec.std, dtype=np.float32)
    scale = 1.0 / (spec.pixel_scale * std)
    offset = -np.asarray(spec.mean, dtype=np.float32) / std
    pixels = np.stack(images)  # N, H, W, 3 uint8
    batch = np.empty((pixels.shape[0], 3, *pixels.shape[1:3]), dtype=np.float32)
    for channel in range(3):
        np.multiply(pixels[..., channel], scale[channel], out=batch[:, channel], casting="unsafe")
        batch[:, channel] += offset[channel]
    return batch


def load_rgb(path: Path, spec: InputSpec, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An image file as the worker would see it: decoded from its bytes, resized to the model's input."""
    image = decode_frame(path.read_bytes(), target_size=spec.size, max_pixels=max_pixels)
    return resize_for_model(image, spec)
