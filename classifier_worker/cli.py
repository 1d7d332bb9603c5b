"""``classifier-worker``: entry point; exit codes 0 (stopped cleanly), 2 (bad flags or model)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server

from classifier_worker.consumer import BrokerRefused, FrameConsumer
from classifier_worker.metrics import WorkerMetrics
from classifier_worker.processor import BatchProcessor
from classifier_worker.reload import ModelReloader
from classifier_worker.settings import WorkerSettings
from sortline.manifest import ModelIntegrityError
from sortline.settings import configure_logging, parse_cli
from sortline_runtime.model import DEFAULT_MODEL_DIR, CascadeModel

if TYPE_CHECKING:
    from classifier_worker.device_imaging import DeviceDecoder

log = logging.getLogger("classifier_worker")


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_cli(WorkerSettings, argv, prog="classifier-worker")
    configure_logging(settings.log_level)
    model_dir = settings.model or DEFAULT_MODEL_DIR
    load = partial(
        CascadeModel.load,
        model_dir,
        intra_op_threads=settings.inference_threads,
        device=settings.device,
        spin=settings.inference_spin,
        variant=settings.variant,
    )
    try:
        model = load()
    except (ModelIntegrityError, ValueError, OSError) as error:
        print(f"classifier-worker: cannot load model from {model_dir}: {error}", file=sys.stderr)
        return 2
    model.warm_up((1, settings.max_batch))
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    metrics.set_model(model.version)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=registry)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        device_decoder = make_device_decoder(settings.decode, model)
    except ImportError as error:
        print(f"classifier-worker: --decode device needs torch and torchvision: {error}", file=sys.stderr)
        return 2
    with ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="decode") as executor:
        processor = BatchProcessor(model, settings, metrics, executor, device_decoder)
        reloader = ModelReloader(model_dir, load, processor, metrics, warm_up_batches=(1, settings.max_batch))
        try:
            FrameConsumer(settings, processor, metrics, stop, reloader.on_event).run()
        except BrokerRefused as error:
            print(f"classifier-worker: {error}", file=sys.stderr)
            return 2
        finally:
            reloader.close()
    log.info("stopped")
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
