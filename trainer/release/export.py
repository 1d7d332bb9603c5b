"""ONNX export of the backbone and of the served two-head model, and the torch/ORT parity check.

The served graph takes ``image`` [N, 3, 224, 224] (already normalised) and returns ``p_organic``
[N] (sigmoid) and ``material_probs`` [N, 6] (softmax, ``MATERIALS`` order): one forward pass of
the shared backbone feeds both heads.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

log = logging.getLogger(__name__)

OPSET = 17
INPUT_NAME = "image"


class CascadeNet(nn.Module):
    """Backbone + organic head + material head, with probabilities as outputs.

    With ``mirror_average`` the graph also runs the horizontally mirrored image (one batch of 2N
    through the backbone) and averages both views' probabilities: twice the compute, but far fewer
    confidently wrong items, so more of them clear the abstain threshold at the same purity. The
    inputs and outputs stay the same, so the worker serves it unchanged.
    """

    def __init__(
        self,
        backbone: nn.Module,
        organic_head: nn.Module,
        material_head: nn.Module,
        *,
        mirror_average: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.organic_head = organic_head
        self.material_head = material_head
        self.mirror_average = mirror_average

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        views = torch.cat([image, torch.flip(image, dims=[3])]) if self.mirror_average else image
        features = self.backbone(views)
        p_organic = torch.sigmoid(self.organic_head(features)).reshape(-1)
        material_probs = torch.softmax(self.material_head(features), dim=1)
        if self.mirror_average:
            p_organic = p_organic.reshape(2, -1).mean(dim=0)
            material_probs = material_probs.reshape(2, -1, material_probs.shape[-1]).mean(dim=0)
        return p_organic, material_probs


def export_onnx(model: nn.Module, path: Path, output_names: list[str], size: int = 224) -> None:
    """Export with the TorchScript exporter (dynamo=False), dynamic batch axis, opset 17."""
    model.eval()
    example = torch.zeros(2, 3, size, size)
    dynamic_axes = {INPUT_NAME: {0: "N"}, **{name: {0: "N"} for name in output_names}}
    with torch.inference_mode(), warnings.catch_warnings():
        # The TorchScript exporter is chosen on purpose (dynamic axes, proven parity); hush its notice.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            dynamo=False,
        )


def parity(model: nn.Module, onnx_path: Path, batch: np.ndarray) -> dict[str, float]:
    """Max absolute difference per output between torch and ONNX Runtime on the same batch."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    ort_outputs = session.run(names, {INPUT_NAME: batch})
    with torch.inference_mode():
        torch_outputs = model(torch.from_numpy(batch))
    if isinstance(torch_outputs, torch.Tensor):
        torch_outputs = (torch_outputs,)
    return {
        name: float(np.max(np.abs(ours.numpy() - theirs)))
        for name, ours, theirs in zip(names, torch_outputs, ort_outputs, strict=True)
    }
