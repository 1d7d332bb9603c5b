"""The served model: an ONNX Runtime session plus its manifest, verified before loading."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from sortline.cascade import CascadeDecision, CascadeThresholds, decide
from sortline.manifest import ModelManifest, load_manifest, variant_path
from sortline_runtime.sessions import open_session

log = logging.getLogger(__name__)

#: The model committed in the repository, served when no --model is given.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "default"


class DeviceUnavailable(ValueError):
    """``--device cuda`` on a machine whose ONNX Runtime has no CUDA provider."""


def select_providers(device: str, available: list[str]) -> list[str]:
    """ONNX Runtime execution providers for ``--device auto|cpu|cuda``, best first.

    ``auto`` takes CUDA where this onnxruntime build has it (the onnxruntime-gpu wheel on a GPU
    node) and the CPU otherwise; ``cuda`` insists, so a GPU node that lost its driver fails loudly
    instead of silently sorting at a tenth of the speed.
    """
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cpu" or (device == "auto" and not has_cuda):
        return ["CPUExecutionProvider"]
    if device in ("cuda", "auto") and has_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise DeviceUnavailable(
            f"--device cuda, but this onnxruntime offers only {', '.join(available)}; "
            "install onnxruntime-gpu with a matching CUDA runtime, or use --device auto"
        )
    raise ValueError(f"unknown device {device!r}; expected auto, cpu or cuda")


#: The most material accuracy (fraction) a variant may cost against fp32: the trainer keeps a variant
#: only within it, and ``--variant auto`` serves one only within it.
AUTO_VARIANT_MAX_ACCURACY_COST = 0.005


def choose_variant(requested: str, manifest: ModelManifest, providers: list[str]) -> str | None:
    """The variant to serve (None: the main file) for ``--variant auto|main|<name>``.

    ``auto`` serves the encoding that pays off on the device, when the manifest lists it and its
    measured accuracy cost is within half a point: ``int8`` on a CPU (~2.5x faster than fp32 here),
    ``fp16`` on a GPU (tensor cores). Otherwise the main (fp32) file.
    """
    if requested == "main":
        return None
    if requested != "auto":
        return requested
    preferred = "int8" if providers[0] == "CPUExecutionProvider" else "fp16"
    variant = manifest.variants.get(preferred)
    if (
        variant
        and variant.accuracy_delta is not None
        and -variant.accuracy_delta <= AUTO_VARIANT_MAX_ACCURACY_COST
    ):
        return preferred
    return None


def decide_batch(
    p_organic: np.ndarray,
    material_probs: np.ndarray,
    thresholds: CascadeThresholds,
    p_hazard: np.ndarray | None = None,
) -> list[CascadeDecision]:
    """The cascade decision for every row of a batch's outputs (no hazard check without ``p_hazard``)."""
    hazards = [None] * len(p_organic) if p_hazard is None else [float(h) for h in p_hazard]
    return [
        decide(float(p), probs.tolist(), thresholds, hazard)
        for p, probs, hazard in zip(p_organic, material_probs, hazards, strict=True)
    ]


@dataclass(frozen=True)
class Prediction:
    """Raw model outputs for one batch; ``p_hazard`` is None for a model without a hazard output."""

    p_organic: np.ndarray  # [N]
    material_probs: np.ndarray  # [N, len(MATERIALS)]
    p_hazard: np.ndarray | None = None  # [N]


class CascadeModel:
    """One loaded model; ``predict`` is safe to call from one thread at a time."""

    def __init__(
        self, manifest: ModelManifest, session: ort.InferenceSession, variant: str | None = None
    ) -> None:
        self.manifest = manifest
        self.variant = variant
        self._session = session
        self._output_names = [manifest.outputs.p_organic, manifest.outputs.material_probs]
        if manifest.outputs.p_hazard is not None:
            self._output_names.append(manifest.outputs.p_hazard)

    @classmethod
    def load(
        cls,
        model_dir: Path,
        *,
        intra_op_threads: int = 0,
        device: str = "cpu",
        spin: bool = True,
        variant: str = "main",
    ) -> CascadeModel:
        """Verify the model directory (sha256) and open it with ONNX Runtime on ``device``.

        ``spin`` lets ONNX Runtime's threads busy-wait between operators: fastest on a dedicated
        machine, wasteful where decode threads or other processes need the same cores. ``variant``
        is ``main`` (the manifest's onnx_file), ``auto`` (see :func:`choose_variant`) or the name of
        another encoding listed in the manifest (e.g. ``int8``), checked by its own sha256.
        """
        manifest = load_manifest(model_dir, verify=True)
        providers = select_providers(device, ort.get_available_providers())
        chosen = choose_variant(variant, manifest, providers)
        onnx_path = variant_path(model_dir, manifest, chosen) if chosen else model_dir / manifest.onnx_file
        session = open_session(onnx_path, providers=providers, threads=intra_op_threads, spin=spin)
        log.info("loaded model %s from %s on %s", manifest.version, model_dir, session.get_providers()[0])
        return cls(manifest, session, chosen)

    @property
    def version(self) -> str:
        """The manifest's version, plus the variant served, so decisions and metrics tell them apart."""
        return f"{self.manifest.version}+{self.variant}" if self.variant else self.manifest.version

    @property
    def has_hazard(self) -> bool:
        """Whether the model checks for hazards (models made before the hazard bin do not)."""
        return self.manifest.outputs.p_hazard is not None

    def predict(self, batch: np.ndarray) -> Prediction:
        outputs = self._session.run(self._output_names, {self.manifest.input.name: batch})
        return _prediction(outputs)

    @property
    def on_gpu(self) -> bool:
        return self._session.get_providers()[0] == "CUDAExecutionProvider"

    def predict_on_device(self, batch: Any) -> Prediction:
        """Run a torch tensor that already sits on the model's device, without a host round trip.

        ONNX Runtime reads the tensor's memory in place (I/O binding); only the small outputs
        come back to the host. Used with ``DeviceDecoder``: nvJPEG output goes straight in.
        """
        binding = self._session.io_binding()
        binding.bind_input(
            self.manifest.input.name,
            device_type=batch.device.type,
            device_id=batch.device.index or 0,
            element_type=np.float32,
            shape=tuple(batch.shape),
            buffer_ptr=batch.data_ptr(),
        )
        for name in self._output_names:
            binding.bind_output(name, "cpu")
        self._session.run_with_iobinding(binding)
        return _prediction(binding.copy_outputs_to_cpu())

    def decide(self, prediction: Prediction) -> list[CascadeDecision]:
        return decide_batch(
            prediction.p_organic, prediction.material_probs, self.manifest.thresholds, prediction.p_hazard
        )

    def warm_up(self, batch_sizes: tuple[int, ...] = (1, 8)) -> None:
        """Run the model once per batch size so the first real frames do not pay for setup."""
        size = self.manifest.input.size
        for batch_size in batch_sizes:
            self.predict(np.zeros((batch_size, 3, size, size), dtype=np.float32))


def _prediction(outputs: list[np.ndarray]) -> Prediction:
    """Outputs in ``_output_names`` order (p_organic, material_probs, then p_hazard if any)."""
    p_hazard = outputs[2].reshape(-1) if len(outputs) > 2 else None
    return Prediction(outputs[0].reshape(-1), outputs[1], p_hazard)
