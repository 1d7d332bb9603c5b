"""One way to assemble a worker from its settings: the CLI runs it, tests and the benchmark too.

Model, metrics, decode lanes, processor, hot reload and consumer are wired here and nowhere else,
so a test's worker is the worker that runs at a plant.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from classifier_worker.consumer import FrameConsumer
from classifier_worker.cpus import available_cpus
from classifier_worker.metrics import WorkerMetrics
from classifier_worker.processor import BatchProcessor
from classifier_worker.reload import ModelReloader
from classifier_worker.settings import WorkerSettings
from classifier_worker.shadow import ShadowRunner
from sortline.registry import CANDIDATE, CURRENT, resolve_model_dir
from sortline_runtime.model import DEFAULT_MODEL_DIR, CascadeModel

if TYPE_CHECKING:
    from classifier_worker.device_imaging import DeviceDecoder

log = logging.getLogger(__name__)


@dataclass
class Worker:
    """A worker ready to ``run()`` until ``stop`` is set."""

    settings: WorkerSettings
    consumer: FrameConsumer
    processor: BatchProcessor
    metrics: WorkerMetrics
    registry: CollectorRegistry
    stop: threading.Event

    def run(self) -> None:
        self.consumer.run()


def model_loader(settings: WorkerSettings, pointer: str = CURRENT) -> Callable[[], CascadeModel]:
    """Loads the worker's model with its options: at start, and again on every promotion.

    ``--model`` may be a registry: its ``pointer`` version is resolved at each load.
    """
    path = settings.model or DEFAULT_MODEL_DIR

    def load() -> CascadeModel:
        return CascadeModel.load(
            resolve_model_dir(path, pointer),
            intra_op_threads=settings.inference_threads or available_cpus(),
            device=settings.device,
            spin=settings.inference_spin,
            variant=settings.variant,
        )

    return load


def load_model(settings: WorkerSettings) -> CascadeModel:
    """The model to serve, verified against its manifest and warmed up.

    Raises what loading raises: ``ModelIntegrityError``, ``ValueError``, ``OSError``.
    """
    model = model_loader(settings)()
    model.warm_up(warm_up_batches(settings))
    return model


def warm_up_batches(settings: WorkerSettings) -> tuple[int, ...]:
    return (1, settings.max_batch)


@contextmanager
def build_worker(settings: WorkerSettings, model: CascadeModel) -> Iterator[Worker]:
    """Wire a worker around ``model``; its threads end when the context exits.

    Raises ``ImportError`` for ``--decode device`` without torch, before anything has started.
    """
    device_decoder = make_device_decoder(settings.decode, model)
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    metrics.set_model(model.version)
    metrics.start_line(settings.line_id)
    stop = threading.Event()
    with (
        ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="decode") as executor,
        ThreadPoolExecutor(1, thread_name_prefix="decode-large") as large_lane,
    ):
        processor = BatchProcessor(model, settings, metrics, executor, device_decoder, large_lane)
        reloader = ModelReloader(
            settings.model or DEFAULT_MODEL_DIR,
            model_loader(settings),
            processor,
            metrics,
            warm_up_batches=warm_up_batches(settings),
        )
        on_event, on_connected = reloader.on_event, reloader.on_connected
        consumer = FrameConsumer(settings, processor, metrics, stop, on_event, on_connected)
        if settings.shadow:
            processor.shadow = shadow = make_shadow(settings, metrics, consumer)
            consumer.on_model_event = lambda body: (on_event(body), shadow.reload_later())
            consumer.on_connected = lambda: (on_connected(), shadow.reload_later())
        try:
            yield Worker(settings, consumer, processor, metrics, registry, stop)
        finally:
            stop.set()
            reloader.close()
            if processor.shadow is not None:
                processor.shadow.close()


def make_shadow(settings: WorkerSettings, metrics: WorkerMetrics, consumer: FrameConsumer) -> ShadowRunner:
    """The registry's candidate on one low-priority thread; no candidate pointer: nothing on trial."""
    path = settings.model or DEFAULT_MODEL_DIR
    load = model_loader(settings.model_copy(update={"inference_threads": 1}), CANDIDATE)

    def load_candidate() -> CascadeModel | None:
        if not (path / CANDIDATE).exists():
            return None
        return load()

    return ShadowRunner(load_candidate, settings.shadow_share, settings.view_combination, metrics,
                        settings.line_id, consumer.submit_review)  # fmt: skip


def make_device_decoder(decode: str, model: CascadeModel) -> DeviceDecoder | None:
    """The on-device decoder for ``--decode device``, or for ``auto`` on a GPU; else None (OpenCV)."""
    if decode == "cpu" or (decode == "auto" and not model.on_gpu):
        return None
    try:
        from classifier_worker.device_imaging import DeviceDecoder, cuda_decode_available
    except ImportError:
        if decode == "auto":  # a GPU image without torch still works, decoding on the CPU
            log.warning("model on GPU but torch is not installed; decoding JPEGs on the CPU")
            return None
        raise
    device = "cuda" if model.on_gpu and cuda_decode_available() else "cpu"
    if decode == "auto" and device == "cpu":
        return None
    log.info("decoding JPEGs per batch with torchvision on %s", device)
    return DeviceDecoder(model.manifest.input, device)
