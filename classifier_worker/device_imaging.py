"""Decode, resize and normalise a batch of frames on the model's device: nvJPEG on a GPU worker.

On a CPU worker, OpenCV in the decode threads is the right place (``sortline_runtime.imaging``).
On a GPU node the CPU decode is what limits a worker: ~1-2 CPU-ms per 512x384 frame against a
fraction of that for the model on the GPU (docs/performance.md). So with ``--decode device`` the
frames stay JPEG bytes until the batch closes, then torchvision decodes the whole batch with nvJPEG
on the GPU, resizes it there and hands the normalised tensor to ONNX Runtime without a copy back to
the host.

The resize is OpenCV's, written as two small matrix products (INTER_AREA's box weights when
shrinking, INTER_LINEAR's otherwise), so the model sees the pixels it was trained and calibrated
on: torch's own bilinear or area filters differ from OpenCV's by up to 2-3 grey levels on average
on textured photos, enough to move a borderline item to another bin.

The same code runs on a CPU (torchvision's libjpeg), which is how it is tested on machines
without a GPU.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_image, decode_jpeg

from sortline.manifest import InputSpec
from sortline_runtime.imaging import shrinks

log = logging.getLogger(__name__)

_JPEG_MAGIC = b"\xff\xd8"


def cuda_decode_available() -> bool:
    """True where torch sees a CUDA device, so nvJPEG decoding can be used."""
    return torch.cuda.is_available()


@dataclass(frozen=True)
class DeviceBatch:
    """The model input for the frames that decoded, and the positions of those that did not."""

    tensor: torch.Tensor  # [N, 3, size, size] float32 on the device, NCHW, normalised
    decoded: list[int]
    failed: dict[int, str]  # position in the request -> why it could not be decoded


class DeviceDecoder:
    """Turns JPEG (or PNG) frame bodies into the model's input tensor on ``device``."""

    def __init__(self, spec: InputSpec, device: str = "cuda") -> None:
        self.spec = spec
        self.device = torch.device(device)
        self._mean = torch.tensor(spec.mean, device=self.device).view(1, 3, 1, 1) * spec.pixel_scale
        self._std = torch.tensor(spec.std, device=self.device).view(1, 3, 1, 1) * spec.pixel_scale
        self._matrices: dict[tuple[int, bool], torch.Tensor] = {}  # per frame side: few distinct

    def batch(self, bodies: list[bytes]) -> DeviceBatch:
        """Decode every body; a frame the decoder refuses is reported, never fails the others."""
        images, failed = self._decode_all(bodies)
        decoded = [index for index in range(len(bodies)) if index not in failed]
        size = self.spec.size
        if not decoded:
            return DeviceBatch(torch.empty((0, 3, size, size), device=self.device), [], failed)
        resized = torch.stack([self._resize(images[i]) for i in decoded])
        tensor = (resized.round_().clamp_(0.0, 255.0) - self._mean) / self._std
        return DeviceBatch(tensor.contiguous(), decoded, failed)

    def _resize(self, image: torch.Tensor) -> torch.Tensor:
        """[3, H, W] uint8 to [3, size, size] float, as ``sortline_runtime.imaging.resize_for_model`` does."""
        height, width = image.shape[1:]
        shrink = shrinks(height, width, self.spec)
        rows = self._matrix(height, shrink)
        columns = self._matrix(width, shrink)
        return rows @ image.float() @ columns.T

    def _matrix(self, length: int, shrink: bool) -> torch.Tensor:
        key = (length, shrink)
        if key not in self._matrices:
            weights = resize_weights(length, self.spec.size, area=shrink)
            self._matrices[key] = torch.from_numpy(weights).to(self.device)
        return self._matrices[key]

    def _decode_all(self, bodies: list[bytes]) -> tuple[dict[int, torch.Tensor], dict[int, str]]:
        """One batched nvJPEG call for the JPEGs; if it fails, one call per frame to find the culprit."""
        jpegs = [i for i, body in enumerate(bodies) if body.startswith(_JPEG_MAGIC)]
        others = [i for i, body in enumerate(bodies) if not body.startswith(_JPEG_MAGIC)]
        images: dict[int, torch.Tensor] = {}
        failed: dict[int, str] = {}
        try:
            decoded = decode_jpeg(
                [_as_tensor(bodies[i]) for i in jpegs], mode=ImageReadMode.RGB, device=self.device
            )
            images.update(zip(jpegs, decoded, strict=True))
        except RuntimeError:
            for index in jpegs:
                self._decode_one(index, bodies[index], images, failed)
        for index in others:  # PNG: decoded on the CPU
            self._decode_one(index, bodies[index], images, failed)
        return images, failed

    def _decode_one(
        self, index: int, body: bytes, images: dict[int, torch.Tensor], failed: dict[int, str]
    ) -> None:
        try:
            if body.startswith(_JPEG_MAGIC):
                images[index] = decode_jpeg(_as_tensor(body), mode=ImageReadMode.RGB, device=self.device)
            else:
                images[index] = decode_image(_as_tensor(body), mode=ImageReadMode.RGB).to(self.device)
        except RuntimeError as error:
            reason = str(error).splitlines()[0].rsplit(", ", 1)[-1]  # drop torchvision's source path
            failed[index] = f"torchvision could not decode the image: {reason[:200]}"


def resize_weights(n_in: int, n_out: int, *, area: bool) -> np.ndarray:
    """[n_out, n_in] weights of OpenCV's resize along one axis: INTER_AREA or INTER_LINEAR."""
    weights = np.zeros((n_out, n_in), dtype=np.float32)
    scale = n_in / n_out
    for out in range(n_out):
        if area:  # each output pixel averages the input span it covers, partial pixels pro rata
            start, end = out * scale, (out + 1) * scale
            for src in range(int(start), min(n_in, int(np.ceil(end)))):
                weights[out, src] = (min(end, src + 1) - max(start, src)) / scale
        else:  # pixel centres aligned, two neighbours, clamped at the borders
            position = (out + 0.5) * scale - 0.5
            left = int(np.floor(position))
            fraction = position - left
            if left < 0:
                left, fraction = 0, 0.0
            if left >= n_in - 1:
                left, fraction = n_in - 1, 0.0
            weights[out, left] += 1.0 - fraction
            weights[out, min(left + 1, n_in - 1)] += fraction
    return weights


def _as_tensor(body: bytes) -> torch.Tensor:
    """A writable uint8 tensor of the bytes (torch refuses to wrap read-only memory)."""
    return torch.from_numpy(np.frombuffer(body, dtype=np.uint8).copy())
