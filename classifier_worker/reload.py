"""Hot reload: when a model is promoted, load it beside the serving one and swap between two batches.

``--model`` is a model directory or a registry (``sortline.registry``), whose ``current`` version is
resolved at every load: a promotion event triggers a reload, and so does every (re)connection to
the broker, so a worker that was away while a model was promoted catches up when it comes back.

A reload that fails (files missing, sha256 mismatch, a model that will not load) keeps the old
model serving, logs why and counts it (``sortline_model_reloads_total{result}``): a bad promotion
must never stop a line. Loading and warm-up
run on a thread of their own, so neither the pika thread nor the inference thread waits for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import ValidationError

from classifier_worker.metrics import WorkerMetrics
from classifier_worker.processor import BatchProcessor
from sortline.manifest import load_manifest
from sortline.messages import ModelPromoted
from sortline.registry import resolve_model_dir
from sortline_runtime.model import CascadeModel

log = logging.getLogger(__name__)


class ModelReloader:
    """Reloads ``model_dir`` through ``load`` (the worker's own model options) on each promotion.

    The directory is the source of truth and the event only a trigger: every worker of a site hears
    every promotion, and one whose directory still holds the model it serves has nothing to do.
    """

    def __init__(
        self,
        model_dir: Path,
        load: Callable[[], CascadeModel],
        processor: BatchProcessor,
        metrics: WorkerMetrics,
        warm_up_batches: tuple[int, ...] = (1,),
    ) -> None:
        self.model_dir = model_dir
        self._load = load
        self.processor = processor
        self.metrics = metrics
        self.warm_up_batches = warm_up_batches
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="model-reload")

    def on_event(self, body: bytes) -> None:
        """From the pika thread: parse the event and reload in the background (never raises)."""
        try:
            event = ModelPromoted.model_validate_json(body)
        except ValidationError as error:
            log.error("ignoring a malformed model event: %s", error.errors()[:1])
            return
        self._executor.submit(self.reload, event)

    def on_connected(self) -> None:
        """From the pika thread, after every (re)connection: serve what the directory holds now.

        The look itself (one manifest read) happens here, before the consumer reports itself ready,
        so a promotion installed after that moment is always one this worker hears of; only a load
        goes to the background.
        """
        if not self._directory_holds_what_is_served():
            self._executor.submit(self.reload, None)

    def _directory_holds_what_is_served(self) -> bool:
        """True when the directory's manifest names the served file; False if it differs or is unreadable."""
        try:
            on_disk = load_manifest(resolve_model_dir(self.model_dir), verify=False)
        except Exception:  # the load that follows fails with the reason, logged and counted
            return False
        return on_disk.onnx_sha256 == self.processor.model.manifest.onnx_sha256

    def reload(self, event: ModelPromoted | None) -> str:
        """``ok`` (swapped in), ``unchanged`` (nothing new on disk) or ``failed`` (old model kept)."""
        current = self.processor.model
        why = f"promotion of {event.version}" if event else "connected"
        if self._directory_holds_what_is_served():
            (log.info if event else log.debug)("%s: %s still holds %s", why, self.model_dir, current.version)
            return self._count("unchanged") if event else "unchanged"
        try:  # an unreadable manifest fails here too, with its reason
            model = self._load()  # verifies every byte against the manifest's sha256
            model.warm_up(self.warm_up_batches)
        except Exception as error:  # whatever breaks, a bad promotion must not stop the line
            log.error(
                "%s: not loaded from %s; still serving %s: %s: %s",
                why, self.model_dir, current.version, type(error).__name__, error,
            )  # fmt: skip
            return self._count("failed")
        self.processor.swap_model(model)
        self.metrics.set_model(model.version)
        log.info("now serving %s (was %s)", model.version, current.version)
        if event is not None and model.manifest.onnx_sha256 != event.onnx_sha256:
            log.warning(
                "promotion announced %s but %s holds %s: is this worker's --model the promoted one?",
                event.version, self.model_dir, model.version,
            )  # fmt: skip
        return self._count("ok")

    def _count(self, result: str) -> str:
        self.metrics.model_reloads.labels(result=result).inc()
        return result

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
