"""The backbone of a served model, cut out of its ONNX graph: new heads on a fine-tuned backbone.

Fine-tuning the whole network takes most of an hour on two cores; the heads take a minute on cached
features. Cutting the pooled-feature tensor out of a served ``model.onnx`` (mirror included, as it is
served) gives features of exactly the backbone the line runs, so new heads (another label, another
calibration) need no fine-tuning. The new model is then that same backbone graph with the new
heads' graph appended (``trainer.release.compose``), so the exported backbone is bit-identical.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from sortline.manifest import InputSpec, load_manifest, sha256_of
from sortline_runtime.imaging import to_model_input
from sortline_runtime.sessions import open_session
from trainer.fit.frozen_features import Backbone

log = logging.getLogger(__name__)

#: The pooled-feature tensor of the served graph: [2N, 1280] with the mirror average on (plain
#: views first, then their mirrors), [N, 1280] without. Named by the PyTorch export of CascadeNet.
FEATURES_TENSOR = "/backbone/global_pool/flatten/Flatten_output_0"
INPUT_NAME = "image"


class BackboneCutError(ValueError):
    """The model's graph has no pooled-feature tensor to cut at (not a Sortline cascade export)."""


def cut_backbone(model_dir: Path, cache_dir: Path) -> tuple[Path, str]:
    """The backbone of ``model_dir``'s fp32 graph as its own ONNX file in ``cache_dir``, and its identity.

    The identity (``served-<sha256[:16]>`` of the cut file) keys the feature cache, so features of
    one backbone are never mistaken for another's, whatever model directory held it.
    """
    manifest = load_manifest(model_dir, verify=True)
    source = model_dir / manifest.onnx_file
    graph = onnx.load(str(source))
    if FEATURES_TENSOR not in {out for node in graph.graph.node for out in node.output}:
        raise BackboneCutError(f"{source} has no tensor {FEATURES_TENSOR}; cannot cut its backbone")
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f"cut-{manifest.onnx_sha256[:16]}.tmp.onnx"
    onnx.utils.extract_model(str(source), str(tmp), [INPUT_NAME], [FEATURES_TENSOR], check_model=False)
    ident = f"served-{sha256_of(tmp)[:16]}"
    path = cache_dir / f"{ident}.onnx"
    tmp.replace(path)
    log.info("cut the backbone of %s (%s) to %s", model_dir, manifest.version, path)
    return path, ident


def mirrored_in_graph(path: Path) -> bool:
    """Whether the cut graph mirrors its input itself (a mirror-averaging served model)."""
    graph = onnx.load(str(path), load_external_data=False).graph
    return any(node.op_type == "Concat" and INPUT_NAME in node.input for node in graph.node)


def embed_in_graph(session: ort.InferenceSession, images: list[np.ndarray], spec: InputSpec) -> np.ndarray:
    """[n, 2, D] features: the graph returns the plain views, then their mirrors, in one batch."""
    (features,) = session.run(None, {INPUT_NAME: to_model_input(images, spec)})
    n = len(images)
    return np.stack([features[:n], features[n:]], axis=1).astype(np.float32)


def served_backbone(model_dir: Path, cache_dir: Path) -> Backbone:
    """A feature source for ``frozen_features.extract`` running ``model_dir``'s own backbone."""
    path, ident = cut_backbone(model_dir, cache_dir)
    if not mirrored_in_graph(path):
        raise BackboneCutError(f"{model_dir} does not average the mirror: no mirrored view to cut")
    return Backbone(ident, lambda _cache: open_session(path), embed_in_graph)
