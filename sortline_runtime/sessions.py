"""ONNX Runtime sessions, opened one way everywhere: the worker's models and the trainer's checks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

from sortline.manifest import ModelIntegrityError, sha256_of

CPU_ONLY = ("CPUExecutionProvider",)


def open_session(
    path: Path,
    *,
    providers: Sequence[str] = CPU_ONLY,
    threads: int = 0,
    spin: bool = True,
    sha256: str | None = None,
) -> ort.InferenceSession:
    """An inference session on ``path`` with every graph optimisation, after an optional sha256 check.

    ``threads`` is ONNX Runtime's intra-op thread count (0: one per core). ``spin`` lets those
    threads busy-wait between operators: fastest on a dedicated machine, wasteful where other
    threads need the same cores. ``sha256``, when given, must match the file's bytes: a file that
    changed since its manifest was written is refused before ONNX Runtime parses it.
    """
    if sha256 is not None and (actual := sha256_of(path)) != sha256:
        raise ModelIntegrityError(f"{path} has sha256 {actual}, expected {sha256}; refusing to load")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=list(providers))
