"""(a) The served model in-process on ready float32 tensors: the ceiling any pipeline can reach."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sortline_runtime.model import CascadeModel

BATCH_SIZES = (1, 8, 16, 32)


def time_point(run: Callable[[], None], items_per_run: int, min_seconds: float) -> dict[str, float]:
    """Run until ``min_seconds`` passed (at least 3 runs); items per second over the whole span."""
    runs = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    elapsed = 0.0
    while elapsed < min_seconds or runs < 3:
        run()
        runs += 1
        elapsed = time.perf_counter() - started
    items = runs * items_per_run
    return {
        "images_per_s": items / elapsed,
        "iterations": runs,
        "seconds": elapsed,
        # CPU time of all threads: compared with the worker's CPU per decision, it shows what the
        # pipeline spends beyond the model itself.
        "cpu_ms_per_image": (time.process_time() - cpu_started) * 1000 / items,
    }


def measure_raw(
    model_dir: Path,
    min_seconds: float,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    on_point: Callable[[int], None] | None = None,
    variant: str = "auto",
) -> dict[str, Any]:
    model = CascadeModel.load(model_dir, variant=variant)
    size = model.manifest.input.size
    rng = np.random.default_rng(0)
    points: dict[str, dict[str, float]] = {}
    for batch_size in batch_sizes:
        batch = rng.standard_normal((batch_size, 3, size, size), dtype=np.float32)
        for _ in range(3):  # warm-up: allocator, thread pool, kernel selection
            model.predict(batch)
        points[str(batch_size)] = time_point(lambda b=batch: model.predict(b), batch_size, min_seconds)
        if on_point:
            on_point(batch_size)
    best = max(points, key=lambda key: points[key]["images_per_s"])
    # One point with a single intra-op thread: on a shared machine it shows whether the worker's
    # default (one thread per core) loses to threads waiting for a core another process holds.
    single = CascadeModel.load(model_dir, intra_op_threads=1, variant=variant)
    batch = rng.standard_normal((int(best), 3, size, size), dtype=np.float32)
    for _ in range(3):
        single.predict(batch)
    single_point = time_point(lambda: single.predict(batch), int(best), min_seconds)
    return {
        "runtime": "onnxruntime CPUExecutionProvider (CascadeModel.load, intra-op threads = cores)",
        "variant": model.variant or "main (fp32)",
        "input_size": size,
        "batch_sizes": points,
        "best_batch_size": int(best),
        "best_images_per_s": points[best]["images_per_s"],
        "best_batch_one_thread": single_point,
    }
