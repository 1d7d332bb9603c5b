"""int8 variant of a served ONNX model: ONNX Runtime static quantization, and its speed.

EfficientNet-Lite was designed for int8 (ReLU6, no squeeze-excite, no swish), so static QDQ
quantization with per-channel weights usually keeps its accuracy. Activation ranges are
calibrated on a few hundred *training* images read through the serving runtime's preprocessing, so the
ranges are those of the pixels the model will really see.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from sortline.manifest import InputSpec
from sortline_runtime.imaging import to_model_input
from sortline_runtime.sessions import open_session
from trainer.data.dataset import Sample
from trainer.data.images import load_rgb_or_none

log = logging.getLogger(__name__)


class ImageReader(CalibrationDataReader):
    """Feeds preprocessed images to the quantizer in small batches."""

    def __init__(self, samples: Sequence[Sample], spec: InputSpec, batch_size: int = 16) -> None:
        self._batches = self._load(samples, spec, batch_size)

    @staticmethod
    def _load(samples: Sequence[Sample], spec: InputSpec, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(samples), batch_size):
            images = [load_rgb_or_none(s.path, spec) for s in samples[start : start + batch_size]]
            good = [img for img in images if img is not None]
            if good:
                yield {spec.name: to_model_input(good, spec)}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def calibration_samples(samples: Sequence[Sample], count: int = 300) -> list[Sample]:
    """An evenly strided, deterministic pick of ``count`` samples (every label represented)."""
    ordered = sorted(samples, key=lambda s: s.key)
    step = max(1, len(ordered) // count)
    return ordered[::step][:count]


def output_nodes(path: Path) -> list[str]:
    """The final Sigmoid/Softmax nodes: kept in float so probabilities are not rounded to 1/255."""
    graph = onnx.load(str(path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type in ("Sigmoid", "Softmax")]


def quantize_int8(
    fp32: Path,
    int8: Path,
    samples: Sequence[Sample],
    spec: InputSpec,
    *,
    method: CalibrationMethod = CalibrationMethod.MinMax,
    extra_options: dict[str, Any] | None = None,
    keep_float: Sequence[str] = (),
) -> None:
    """Write a QDQ int8 model (per-channel int8 weights, uint8 activations, ``method`` ranges).

    Every supported op is quantized except the output Sigmoid/Softmax and the nodes named in
    ``keep_float``. ``method`` and ``extra_options`` (ONNX Runtime's names) exist for experiments
    such as docs/experiments/int8_calibration.py; the trainer uses the defaults.

    Measured on the fine-tuned Lite0 (validation, material accuracy): quantizing every supported op
    cost 0.5 point and ran 2.5x faster than fp32; only Conv/Gemm/MatMul cost 3.1 points (the
    float islands between quantized convs add error) and gained little speed; ``reduce_range``
    cost more. On the EMA model (before `595c40df`, docs/model-report/NOTES.md) MinMax, MinMax with a
    moving average, 1,000 range images, Entropy, Percentile and float heads all lost the same
    0.62 point; Distribution ranges broke the model (-81 points).
    """
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(int8),
            ImageReader(samples, spec),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=method,
            nodes_to_exclude=[*output_nodes(prepared), *keep_float],
            extra_options=extra_options or {},
        )
    log.info("wrote int8 model %s from %d calibration images", int8, len(samples))


def images_per_second(
    sess: ort.InferenceSession, size: int, batch_size: int, *, seconds: float = 4.0, name: str = "image"
) -> float:
    """Throughput of ``sess`` on random input at one batch size (after two warm-up runs)."""
    batch = np.random.default_rng(0).standard_normal((batch_size, 3, size, size), dtype=np.float32)
    for _ in range(2):
        sess.run(None, {name: batch})
    runs, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or runs < 2:
        sess.run(None, {name: batch})
        runs += 1
    return runs * batch_size / elapsed


def speed(
    paths: dict[str, Path], spec: InputSpec, batch_sizes: Sequence[int] = (16, 32), seconds: float = 4.0
) -> dict[str, float]:
    """img/s of each model at each batch size, e.g. ``{"fp32_b16": 101.2, "int8_b16": 180.4, ...}``."""
    figures: dict[str, float] = {}
    for label, path in paths.items():
        sess = open_session(path)
        for batch_size in batch_sizes:
            rate = images_per_second(sess, spec.size, batch_size, seconds=seconds, name=spec.name)
            figures[f"{label}_b{batch_size}"] = round(rate, 1)
    return figures
