"""Turn encoded frames into model input: size checks before decoding, reduced decoding, batching.

The worker serves with these functions and the trainer calibrates and evaluates with them, so the
figures the trainer reports are the figures of the pixels the worker really feeds the model. The
resize rule and the normalisation are the ones the manifest's input spec names.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sortline.manifest import InputSpec
from sortline.messages import DeadLetterReason, InvalidFrame

#: Default cap on the pixels an image header may claim, for the worker's frames and the trainer's files.
MAX_PIXELS = 40_000_000

_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: Progressive and lossless SOFs: libjpeg buffers every coefficient of the whole image for these.
_JPEG_BUFFERED_SOF_MARKERS = frozenset({0xC2, 0xC3, 0xC6, 0xC7, 0xCA, 0xCB, 0xCE, 0xCF})
_JPEG_START_OF_SCAN = 0xDA
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Samples per pixel of each PNG colour type (a palette expands to RGB when decoded).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


@dataclass(frozen=True, slots=True)
class ImageHeader:
    """What an encoded frame's header says, read without decoding a pixel."""

    format: str  # "jpeg" or "png"
    width: int
    height: int
    channels: int
    bytes_per_sample: int
    #: JPEG only: the decoder must buffer the whole image's coefficients (progressive, lossless).
    buffered: bool = False

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_header(body: bytes) -> ImageHeader | None:
    """The header of a JPEG or PNG body; None when neither is found."""
    if body.startswith(_PNG_SIGNATURE):
        return _png_header(body)
    if body.startswith(b"\xff\xd8"):
        return _jpeg_header(body)
    return None


def image_dimensions(body: bytes) -> tuple[int, int] | None:
    """(width, height) read from a JPEG or PNG header without decoding; None if not found."""
    header = read_header(body)
    return None if header is None else (header.width, header.height)


def _png_header(body: bytes) -> ImageHeader | None:
    if len(body) < 26 or body[12:16] != b"IHDR":
        return None
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", body[16:26])
    channels = _PNG_CHANNELS.get(colour_type)
    if channels is None:
        return None
    return ImageHeader("png", width, height, channels, 2 if bit_depth == 16 else 1)


def _jpeg_header(body: bytes) -> ImageHeader | None:
    """Walk the marker segments to the frame header (SOF), as libjpeg does.

    Bytes between segments that are not a marker are skipped, as libjpeg skips them (with a
    warning): real encoders pad, and OpenCV and Pillow decode such files.
    """
    offset = 2
    while offset + 4 <= len(body):
        if body[offset] != 0xFF:
            offset = body.find(b"\xff", offset)
            if offset < 0:
                return None
            continue
        marker = body[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            offset += 2
            continue
        if marker == _JPEG_START_OF_SCAN:  # image data before any frame header: not a JPEG
            return None
        (length,) = struct.unpack(">H", body[offset + 2 : offset + 4])
        if marker in _JPEG_SOF_MARKERS and offset + 10 <= len(body):
            precision = body[offset + 4]
            height, width = struct.unpack(">HH", body[offset + 5 : offset + 9])
            buffered = marker in _JPEG_BUFFERED_SOF_MARKERS
            return ImageHeader("jpeg", width, height, body[offset + 9], 2 if precision > 8 else 1, buffered)
        offset += 2 + length
    return None


def _reduced_scale(header: ImageHeader, target: int) -> int:
    """The coarsest reduced-decode factor (8, 4, 2 or 1) that still leaves the short side >= target."""
    if header.format != "jpeg" or target <= 0:
        return 1
    for factor in (8, 4, 2):
        if min(header.width, header.height) // factor >= target:
            return factor
    return 1


_REDUCED_READ_FLAGS = {
    8: cv2.IMREAD_REDUCED_COLOR_8,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    1: cv2.IMREAD_COLOR,
}


def decode_cost_bytes(header: ImageHeader, target_size: int) -> int:
    """Memory the decoder allocates for this frame, estimated from its header.

    The pixel count alone misleads: a 16-bit RGBA PNG needs eight bytes a pixel before it becomes
    three, a progressive JPEG buffers every coefficient of the full image (two bytes per sample)
    whatever the scale it is read at, while a baseline JPEG read at 1/8 scale costs 1/64 of its
    pixels. The estimate counts the source samples that must be held and the BGR image produced.
    """
    scale = _reduced_scale(header, target_size)
    output = (header.width // scale + 1) * (header.height // scale + 1) * 3
    if header.format == "png":
        source = header.pixels * header.channels * header.bytes_per_sample
    elif header.buffered:
        source = header.pixels * header.channels * 2
    else:
        source = 0  # baseline JPEG: decoded a band of rows at a time, straight to the output
    return source + output


def check_encoded(
    body: bytes, *, max_pixels: int, max_decoded_bytes: int | None = None, target_size: int = 0
) -> ImageHeader:
    """The header of an encoded frame, or raise :class:`InvalidFrame`.

    Run before any decoder sees the bytes, so that a frame claiming 60000 x 60000 pixels, or one
    whose decode would need hundreds of megabytes, is refused before memory is allocated for it.
    ``target_size`` is the short side a reduced JPEG decode may go down to (0: full size).
    """
    if not body:
        raise InvalidFrame(DeadLetterReason.EMPTY_BODY, "frame body is empty")
    header = read_header(body)
    if header is None:
        raise InvalidFrame(DeadLetterReason.UNDECODABLE_IMAGE, "no JPEG or PNG header found")
    if header.width == 0 or header.height == 0:
        raise InvalidFrame(DeadLetterReason.UNDECODABLE_IMAGE, f"header says {header.width}x{header.height}")
    if header.pixels > max_pixels:
        raise InvalidFrame(
            DeadLetterReason.IMAGE_TOO_LARGE, f"{header.width}x{header.height} exceeds {max_pixels} pixels"
        )
    if max_decoded_bytes is not None:
        cost = decode_cost_bytes(header, target_size)
        if cost > max_decoded_bytes:
            raise InvalidFrame(
                DeadLetterReason.IMAGE_TOO_LARGE,
                f"decoding this {header.width}x{header.height} {header.format} "
                f"({header.channels}x{8 * header.bytes_per_sample}-bit) needs ~{cost >> 20} MiB, "
                f"over the {max_decoded_bytes >> 20} MiB budget",
            )
    return header


def decode_frame(
    body: bytes, *, target_size: int, max_pixels: int, max_decoded_bytes: int | None = None
) -> np.ndarray:
    """Decode an encoded frame to a BGR uint8 image, or raise :class:`InvalidFrame`.

    The header is checked first (:func:`check_encoded`); large frames are decoded at 1/2, 1/4 or
    1/8 scale, which libjpeg does in its IDCT at a fraction of the cost of a full decode and resize.
    """
    header = check_encoded(
        body, max_pixels=max_pixels, max_decoded_bytes=max_decoded_bytes, target_size=target_size
    )
    flag = _REDUCED_READ_FLAGS[_reduced_scale(header, target_size)]
    image = cv2.imdecode(np.frombuffer(body, dtype=np.uint8), flag)
    if image is None or image.size == 0:
        raise InvalidFrame(
            DeadLetterReason.UNDECODABLE_IMAGE,
            f"OpenCV could not decode the {header.width}x{header.height} image",
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
