"""Export of the served two-head model, checked against ONNX Runtime on real images.

The parity check runs real images, preprocessed by the serving runtime, through both the PyTorch
module and the exported file, and refuses an export whose outputs differ by more than
``PARITY_TOLERANCE``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sortline.manifest import InputSpec
from sortline_runtime.imaging import to_model_input
from sortline_runtime.sessions import open_session
from trainer.data.dataset import Sample
from trainer.data.images import load_rgb_or_none
from trainer.model.onnx_export import INPUT_NAME, export_onnx

log = logging.getLogger(__name__)

#: The largest difference in any output between PyTorch and ONNX Runtime that an export may show.
PARITY_TOLERANCE = 1e-4


def parity_batch(samples: list[Sample], spec: InputSpec, count: int = 16) -> np.ndarray:
    """Up to ``count`` evenly spaced real images, preprocessed as the worker does."""
    picked = samples[:: max(1, len(samples) // count)][:count]
    images = [img for s in picked if (img := load_rgb_or_none(s.path, spec)) is not None]
    return to_model_input(images, spec)


def torch_parity(net: nn.Module, onnx_path: Path, batch: np.ndarray) -> dict[str, float]:
    """Max abs difference per output and argmax agreement, PyTorch vs ONNX Runtime."""
    with torch.inference_mode():
        p_t, m_t = (t.numpy() for t in net.eval()(torch.from_numpy(batch)))
    p_o, m_o = open_session(onnx_path).run(None, {INPUT_NAME: batch})
    return {
        "p_organic": float(np.abs(p_t - p_o.reshape(-1)).max()),
        "material_probs": float(np.abs(m_t - m_o).max()),
        "material_agreement": float((m_t.argmax(1) == m_o.argmax(1)).mean()),
        "n_images": len(batch),
        "tolerance": PARITY_TOLERANCE,
    }


def export_served(
    net: nn.Module, path: Path, parity_samples: list[Sample], spec: InputSpec
) -> dict[str, float]:
    """Export the served graph to ``path``, check it against ``net`` on real images; the figures."""
    export_onnx(net, path, output_names=["p_organic", "material_probs"], size=spec.size)
    parity = torch_parity(net, path, parity_batch(parity_samples, spec))
    log.info("parity torch vs onnxruntime: %s", parity)
    if max(parity["p_organic"], parity["material_probs"]) > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX parity check failed: {parity}")
    return parity
