"""A served model from a served model's backbone and new heads: two ONNX graphs joined into one.

The backbone graph is the one cut out of the served model (``trainer.fit.served_backbone``), so the
new model runs bit-identical backbone weights; the heads (organic, material and, where the data had
batteries, hazard) are exported from PyTorch and appended at the pooled-feature tensor. The parity
check compares the joined file with the cut backbone followed by the PyTorch heads, on real images.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from sortline.manifest import InputSpec, OutputSpec
from sortline_runtime.sessions import open_session
from trainer.data.dataset import Sample
from trainer.fit.cross_fit import Heads
from trainer.fit.served_backbone import FEATURES_TENSOR, INPUT_NAME
from trainer.model.backbone import FEATURE_DIM
from trainer.model.onnx_export import OPSET
from trainer.release.export import PARITY_TOLERANCE, parity_batch

log = logging.getLogger(__name__)

HEADS_INPUT = "features"


class HeadsGraph(nn.Module):
    """The heads as the served graph computes them: on plain views then mirrors, averaged."""

    def __init__(self, heads: Heads, *, mirror_average: bool = True) -> None:
        super().__init__()
        self.organic, self.material, self.hazard = heads.organic, heads.material, heads.hazard
        self.mirror_average = mirror_average

    def _mean(self, values: torch.Tensor) -> torch.Tensor:
        if not self.mirror_average:
            return values
        return values.reshape(2, -1, *values.shape[1:]).mean(dim=0)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        p_organic = self._mean(torch.sigmoid(self.organic(features)).reshape(-1))
        material_probs = self._mean(torch.softmax(self.material(features), dim=1))
        if self.hazard is None:
            return p_organic, material_probs
        return p_organic, material_probs, self._mean(torch.sigmoid(self.hazard(features)).reshape(-1))


def output_spec(heads: Heads) -> OutputSpec:
    """The manifest's outputs: p_hazard only with a hazard head."""
    return OutputSpec(p_hazard="p_hazard" if heads.hazard is not None else None)


def _heads_onnx(graph: HeadsGraph, names: list[str], path: Path) -> onnx.ModelProto:
    example = torch.zeros(4, FEATURE_DIM)
    axes = {HEADS_INPUT: {0: "M"}, **{name: {0: "N"} for name in names}}
    with torch.inference_mode():
        torch.onnx.export(graph.eval(), (example,), str(path), input_names=[HEADS_INPUT], output_names=names,
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)  # fmt: skip
    return onnx.load(str(path))


def compose(backbone_path: Path, heads: Heads, out_path: Path) -> HeadsGraph:
    """Write ``out_path``: the cut backbone with ``heads`` appended; returns the heads' module."""
    graph = HeadsGraph(heads)
    names = ["p_organic", "material_probs"] + (["p_hazard"] if heads.hazard is not None else [])
    backbone = onnx.load(str(backbone_path))
    with tempfile.TemporaryDirectory() as tmp:
        head_model = _heads_onnx(graph, names, Path(tmp) / "heads.onnx")
    head_model.ir_version = backbone.ir_version
    # The exporter names edges the same way in both graphs ("/Constant_output_0"): prefix the heads'
    # inner names, keep their input (joined to the features) and their outputs (the contract's names).
    head_model = onnx.compose.add_prefix(head_model, "heads", rename_inputs=False, rename_outputs=False)
    joined = onnx.compose.merge_models(backbone, head_model, io_map=[(FEATURES_TENSOR, HEADS_INPUT)])
    _one_opset_per_domain(joined)
    onnx.checker.check_model(joined)
    onnx.save(joined, str(out_path))
    log.info("joined %s and %d heads into %s", backbone_path.name, len(names), out_path)
    return graph


def _one_opset_per_domain(model: onnx.ModelProto) -> None:
    """merge_models lists the default domain once per input graph; ONNX Runtime's quantizer wants one."""
    seen: dict[str, int] = {}
    for entry in model.opset_import:
        domain = "" if entry.domain in ("", "ai.onnx") else entry.domain
        seen[domain] = max(seen.get(domain, 0), entry.version)
    del model.opset_import[:]
    model.opset_import.extend(onnx.helper.make_opsetid(domain, version) for domain, version in seen.items())


def parity(
    backbone_path: Path, graph: HeadsGraph, joined_path: Path, samples: list[Sample]
) -> dict[str, float]:
    """Largest output difference between the joined file and backbone + PyTorch heads; refused over
    ``PARITY_TOLERANCE``."""
    batch = parity_batch(samples, InputSpec())
    (features,) = open_session(backbone_path).run(None, {INPUT_NAME: batch})
    with torch.inference_mode():
        expected = [t.numpy() for t in graph.eval()(torch.from_numpy(features))]
    got = open_session(joined_path).run(None, {INPUT_NAME: batch})
    names = ["p_organic", "material_probs", "p_hazard"][: len(got)]
    figures = {name: float(np.abs(a - b).max()) for name, a, b in zip(names, expected, got, strict=True)}
    log.info("parity of the joined model: %s", figures)
    if max(figures.values()) > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX parity check failed: {figures}")
    return {**figures, "n_images": len(batch), "tolerance": PARITY_TOLERANCE}
