"""Frame decoding: headers read before pixels, reduced decoding, and clear reasons for bad bytes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sortline.manifest import InputSpec
from sortline.messages import DeadLetterReason, InvalidFrame
from sortline_runtime.imaging import (
    decode_cost_bytes,
    decode_frame,
    image_dimensions,
    read_header,
    resize_for_model,
    to_model_input,
)


def encoded(width: int, height: int, ext: str = ".jpg") -> bytes:
    image = np.zeros((height, width, 3), dtype=np.uint8)
    cv2.rectangle(image, (width // 4, height // 4), (width // 2, height // 2), (0, 200, 50), -1)
    ok, buffer = cv2.imencode(ext, image)
    assert ok
    return buffer.tobytes()


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_dimensions_come_from_the_header(ext: str) -> None:
    assert image_dimensions(encoded(640, 480, ext)) == (640, 480)


def claim_size(jpeg: bytes, width: int, height: int) -> bytes:
    """Rewrite the SOF marker so the header claims another size (a decompression-bomb header)."""
    sof = jpeg.index(b"\xff\xc0")
    return jpeg[: sof + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + jpeg[sof + 9 :]


def test_a_header_claiming_60000_squared_pixels_is_refused_before_decoding() -> None:
    bomb = claim_size(encoded(64, 64), 60000, 60000)
    with pytest.raises(InvalidFrame) as caught:
        decode_frame(bomb, target_size=224, max_pixels=40_000_000)
    assert caught.value.reason is DeadLetterReason.IMAGE_TOO_LARGE


def test_large_frames_are_decoded_at_reduced_scale_but_never_below_the_model_size() -> None:
    image = decode_frame(encoded(2048, 1536), target_size=224, max_pixels=40_000_000)
    assert image.shape == (1536 // 4, 2048 // 4, 3)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", DeadLetterReason.EMPTY_BODY),
        (b"not an image at all", DeadLetterReason.UNDECODABLE_IMAGE),
        (encoded(320, 240)[:200], DeadLetterReason.UNDECODABLE_IMAGE),
    ],
)
def test_bad_bytes_name_their_reason(body: bytes, reason: DeadLetterReason) -> None:
    with pytest.raises(InvalidFrame) as caught:
        decode_frame(body, target_size=224, max_pixels=40_000_000)
    assert caught.value.reason is reason


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_never_escape_as_anything_but_invalid_frame(body: bytes) -> None:
    try:
        image = decode_frame(body, target_size=32, max_pixels=1_000_000)
    except InvalidFrame:
        return
    assert image.ndim == 3 and image.shape[2] == 3


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=4000), st.binary(min_size=1, max_size=64))
def test_corrupted_jpegs_decode_or_fail_cleanly(cut: int, garbage: bytes) -> None:
    jpeg = encoded(320, 240)
    body = jpeg[: cut % len(jpeg)] + garbage
    try:
        decode_frame(body, target_size=32, max_pixels=1_000_000)
    except InvalidFrame as error:
        assert error.reason in (DeadLetterReason.UNDECODABLE_IMAGE, DeadLetterReason.EMPTY_BODY,
                                DeadLetterReason.IMAGE_TOO_LARGE)  # fmt: skip


def test_model_input_is_normalised_rgb_nchw() -> None:
    spec = InputSpec(size=32)
    bgr = np.zeros((10, 20, 3), dtype=np.uint8)
    bgr[..., 2] = 255  # pure red in OpenCV's BGR order
    batch = to_model_input([resize_for_model(bgr, spec)], spec)
    assert batch.shape == (1, 3, 32, 32) and batch.dtype == np.float32
    assert batch[0, 0].mean() == pytest.approx((1.0 - spec.mean[0]) / spec.std[0], rel=1e-5)
    assert batch[0, 1].mean() == pytest.approx((0.0 - spec.mean[1]) / spec.std[1], rel=1e-5)


def test_model_input_matches_the_textbook_normalisation() -> None:
    """The fused multiply-add gives the floats of ``(x / 255 - mean) / std`` in NCHW order."""
    spec = InputSpec(size=32)
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    expected = (np.stack(images).astype(np.float64) / 255.0 - spec.mean) / spec.std
    batch = to_model_input(images, spec)
    assert batch.flags.c_contiguous
    np.testing.assert_allclose(batch, expected.transpose(0, 3, 1, 2), atol=1e-5)


def test_bytes_between_segments_are_skipped_as_libjpeg_skips_them() -> None:
    jpeg = encoded(320, 240)
    dqt = jpeg.index(b"\xff\xdb")
    padded = jpeg[:dqt] + b"\x00\x00\x00" + jpeg[dqt:]
    assert image_dimensions(padded) == (320, 240)
    assert decode_frame(padded, target_size=240, max_pixels=1_000_000).shape[:2] == (240, 320)


def test_image_data_before_any_frame_header_is_not_a_jpeg() -> None:
    assert (
        read_header(b"\xff\xd8\xff\xda\x00\x08" + b"\x00" * 64 + b"\xff\xc0\x00\x11\x08\x00\x10\x00\x10\x03")
        is None
    )


def png16(width: int, height: int) -> bytes:
    return cv2.imencode(".png", np.full((height, width, 3), 40_000, dtype=np.uint16))[1].tobytes()


def test_png_headers_tell_bit_depth_and_channels() -> None:
    header = read_header(png16(300, 200))
    assert (header.format, header.width, header.height, header.channels, header.bytes_per_sample) == (
        "png", 300, 200, 3, 2
    )  # fmt: skip
    rgba = cv2.imencode(".png", np.zeros((10, 10, 4), dtype=np.uint8))[1].tobytes()
    assert (read_header(rgba).channels, read_header(rgba).bytes_per_sample) == (4, 1)


def test_the_decode_budget_counts_bytes_not_pixels() -> None:
    """Two frames of the same pixel count: the 16-bit PNG costs three times the 8-bit JPEG's budget."""
    wide = png16(1000, 1000)  # 1000 * 1000 * (6 + 3) bytes to decode
    with pytest.raises(InvalidFrame) as caught:
        decode_frame(wide, target_size=224, max_pixels=40_000_000, max_decoded_bytes=8 * 2**20)
    assert caught.value.reason is DeadLetterReason.IMAGE_TOO_LARGE and "MiB" in caught.value.detail
    assert decode_frame(encoded(1000, 1000), target_size=224, max_pixels=40_000_000,
                        max_decoded_bytes=8 * 2**20).shape == (250, 250, 3)  # fmt: skip


def test_reduced_and_progressive_jpeg_decodes_are_costed_as_libjpeg_runs_them() -> None:
    image = np.random.default_rng(0).integers(0, 255, (1600, 2400, 3), dtype=np.uint8)
    baseline = read_header(cv2.imencode(".jpg", image)[1].tobytes())
    progressive = read_header(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes())
    assert not baseline.buffered and progressive.buffered
    # a baseline frame read at 1/4 scale costs only its output; a progressive one buffers every sample
    assert decode_cost_bytes(baseline, 224) < 1600 * 2400 * 3 / 8
    assert decode_cost_bytes(progressive, 224) > 1600 * 2400 * 3
