"""One micro-batch from deliveries to outcomes: check, decode (threads), infer once, decide.

No broker code here: the consumer hands in deliveries and publishes what comes back, so this part
is tested on its own and reused by the benchmark.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from classifier_worker.decisions import build_decision
from classifier_worker.frames import Delivery, Frame, check_frame
from classifier_worker.imaging import decode_frame, resize_for_model, to_model_input
from classifier_worker.metrics import WorkerMetrics
from classifier_worker.model import CascadeModel
from classifier_worker.settings import WorkerSettings
from sortline.messages import DeadLetterReason, DecisionMessage, InvalidFrame

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Decided:
    delivery: Delivery
    message: DecisionMessage


@dataclass(frozen=True, slots=True)
class Rejected:
    delivery: Delivery
    reason: DeadLetterReason
    detail: str


Outcome = Decided | Rejected


@dataclass(frozen=True, slots=True)
class _Prepared:
    frame: Frame
    pixels: np.ndarray  # model-sized RGB uint8


class BatchProcessor:
    """Turns a list of deliveries into one outcome each, in the same order."""

    def __init__(
        self, model: CascadeModel, settings: WorkerSettings, metrics: WorkerMetrics, executor: Executor
    ) -> None:
        self.model = model
        self.settings = settings
        self.metrics = metrics
        self.executor = executor

    def process(self, deliveries: list[Delivery]) -> list[Outcome]:
        started = time.perf_counter()
        prepared = list(self.executor.map(self._prepare, deliveries))
        self.metrics.stage_seconds.labels(stage="decode").observe(time.perf_counter() - started)
        ready = [item for item in prepared if isinstance(item, _Prepared)]
        decided = self._infer(ready) if ready else {}
        return [decided[id(item)] if isinstance(item, _Prepared) else item for item in prepared]

    def _prepare(self, delivery: Delivery) -> _Prepared | Rejected:
        """Check and decode one delivery; any failure is that frame's dead letter, never the batch's."""
        try:
            frame = check_frame(delivery, max_body_bytes=self.settings.max_body_bytes)
            spec = self.model.manifest.input
            image = decode_frame(delivery.body, target_size=spec.size, max_pixels=self.settings.max_pixels)
            return _Prepared(frame, resize_for_model(image, spec))
        except InvalidFrame as error:
            return Rejected(delivery, error.reason, error.detail)
        except Exception as error:  # a decoder bug must cost one frame, not the worker
            log.exception("unexpected error preparing frame %s", delivery.message_id)
            return Rejected(delivery, DeadLetterReason.UNDECODABLE_IMAGE, f"decoder failed: {error!r}")

    def _infer(self, ready: list[_Prepared]) -> dict[int, Outcome]:
        started = time.perf_counter()
        batch = to_model_input([item.pixels for item in ready], self.model.manifest.input)
        prediction = self.model.predict(batch)
        decisions = self.model.decide(prediction)
        self.metrics.stage_seconds.labels(stage="inference").observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(len(ready))
        version = self.model.version
        return {
            id(item): Decided(
                item.frame.delivery,
                build_decision(item.frame, decision, float(p), probs.tolist(), version),
            )
            for item, decision, p, probs in zip(
                ready, decisions, prediction.p_organic, prediction.material_probs, strict=True
            )
        }
