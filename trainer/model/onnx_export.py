"""PyTorch modules to ONNX: the served cascade and the headless backbone of heads mode."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

OPSET = 17
INPUT_NAME = "image"


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
