"""From deliveries to outcomes: check and decode one frame (decode threads), infer a batch (once).

No broker code here: the consumer hands in deliveries and publishes what comes back, so this part
is tested on its own and reused by the benchmark.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from classifier_worker.decisions import build_decision, hazard_of
from classifier_worker.frames import Delivery, Frame, FramePolicy, check_frame
from classifier_worker.metrics import WorkerMetrics
from classifier_worker.settings import WorkerSettings
from classifier_worker.views import combine_views, split_views
from sortline.cascade import ResidualReason
from sortline.messages import DeadLetterReason, DecisionMessage, InvalidFrame
from sortline_runtime.imaging import (
    check_encoded,
    decode_cost_bytes,
    decode_frame,
    read_header,
    resize_for_model,
    to_model_input,
)
from sortline_runtime.model import CascadeModel, Prediction

if TYPE_CHECKING:  # torch is only installed on workers that decode on the device
    from classifier_worker.device_imaging import DeviceDecoder
    from classifier_worker.shadow import ShadowRunner

log = logging.getLogger(__name__)

#: A frame whose inference failed this many deliveries in a row is poison: dead-letter it.
POISON_AFTER_DELIVERIES = 3


@dataclass(frozen=True, slots=True)
class Decided:
    delivery: Delivery
    message: DecisionMessage
    review: str | None = None  # why a copy goes to review too: abstained or audit


@dataclass(frozen=True, slots=True)
class Rejected:
    """Dead-letter this frame with a reason."""

    delivery: Delivery
    reason: DeadLetterReason
    detail: str


@dataclass(frozen=True, slots=True)
class Retry:
    """Inference failed on this frame alone; give it back to the broker for another delivery."""

    delivery: Delivery
    detail: str


@dataclass(frozen=True, slots=True)
class Prepared:
    """A checked frame (or item) and its views, decoded unless the batch is decoded on the device."""

    frame: Frame
    views: tuple[bytes, ...]  # the encoded images: one for a frame, up to K for an item
    pixels: tuple[np.ndarray, ...] | None  # model-sized RGB uint8 per view; None: decoded on the device


Outcome = Decided | Rejected | Retry


class BatchProcessor:
    """``prepare`` runs per frame in decode threads; ``infer`` runs per batch on one thread.

    Frames whose decode is expensive (``--large-frame-bytes``) go to ``large_lane``, an executor of
    one thread, when one is given: a few 4K PNGs then cost one core for a while, never the decode
    threads that the frames behind them need to meet their deadlines.
    """

    def __init__(
        self,
        model: CascadeModel,
        settings: WorkerSettings,
        metrics: WorkerMetrics,
        executor: Executor,
        device_decoder: DeviceDecoder | None = None,
        large_lane: Executor | None = None,
    ) -> None:
        self.settings = settings
        self.shadow: ShadowRunner | None = None  # a candidate tried beside the model, deciding nothing
        self._audit = random.Random()
        self.metrics = metrics
        self.executor = executor
        self.large_lane = large_lane
        self._large_slots = threading.BoundedSemaphore(settings.large_frame_backlog)
        self.policy = FramePolicy(
            line_id=settings.line_id,
            max_body_bytes=settings.max_body_bytes,
            cameras=frozenset(settings.cameras),
            max_ahead_ns=settings.max_clock_ahead_ms * 1_000_000,
            max_age_ns=settings.max_frame_age_s * 1_000_000_000,
        )
        # The model and the decoder that feeds it change together on a hot reload: one tuple, so
        # a batch never pairs the new model with the old decoder's input size (or the reverse).
        # A decoder is set when JPEGs are decoded per batch on the model's device.
        self._serving: tuple[CascadeModel, DeviceDecoder | None] = (model, device_decoder)

    @property
    def model(self) -> CascadeModel:
        return self._serving[0]

    @property
    def device_decoder(self) -> DeviceDecoder | None:
        return self._serving[1]

    def swap_model(self, model: CascadeModel) -> None:
        """Serve ``model`` from the next batch on (one attribute write: the inference thread reads
        the pair once per batch, so a batch never mixes two models)."""
        current, decoder = self._serving
        if decoder is not None and model.manifest.input != current.manifest.input:
            from classifier_worker.device_imaging import DeviceDecoder

            decoder = DeviceDecoder(model.manifest.input, str(decoder.device))
        self._serving = (model, decoder)

    def process(self, deliveries: list[Delivery]) -> list[Outcome]:
        """Both steps for a list of deliveries (decoding in the executor); outcomes keep their order."""
        return self.infer(list(self.executor.map(self.prepare, deliveries)))

    def submit(self, delivery: Delivery) -> Future[Prepared | Rejected]:
        """Start preparing ``delivery`` in the lane its decode cost calls for."""
        if self.large_lane is None or not self._is_large(delivery.body):
            return self.executor.submit(self.prepare, delivery)
        if not self._large_slots.acquire(blocking=False):
            refused: Future[Prepared | Rejected] = Future()
            refused.set_result(
                Rejected(
                    delivery,
                    DeadLetterReason.IMAGE_TOO_LARGE,
                    f"{self.settings.large_frame_backlog} large frames already wait for their decode lane",
                )
            )
            return refused
        future = self.large_lane.submit(self.prepare, delivery)
        future.add_done_callback(lambda _: self._large_slots.release())
        return future

    def _is_large(self, body: bytes) -> bool:
        header = read_header(body)
        if header is None:
            return False  # refused cheaply by prepare
        size = 0 if self.device_decoder is not None else self.model.manifest.input.size
        return decode_cost_bytes(header, size) > self.settings.large_frame_bytes

    def prepare(self, delivery: Delivery) -> Prepared | Rejected:
        """Check and decode one delivery; any failure is that frame's dead letter, never the batch's."""
        started = time.perf_counter()
        settings = self.settings
        try:
            frame = check_frame(delivery, self.policy)
            views = tuple(split_views(delivery.body, frame.headers.view_bytes))
            model, decoder = self._serving
            if decoder is not None:  # header checks here, pixels on the device later (full size)
                for view in views:
                    check_encoded(
                        view, max_pixels=settings.max_pixels, max_decoded_bytes=settings.max_decoded_bytes
                    )
                return Prepared(frame, views, None)
            spec = model.manifest.input
            pixels = tuple(
                resize_for_model(
                    decode_frame(view, target_size=spec.size, max_pixels=settings.max_pixels,
                                 max_decoded_bytes=settings.max_decoded_bytes),
                    spec,
                )
                for view in views
            )  # fmt: skip
            return Prepared(frame, views, pixels)
        except InvalidFrame as error:
            return Rejected(delivery, error.reason, error.detail)
        except Exception as error:  # a decoder bug must cost one frame, not the worker
            log.exception("unexpected error preparing frame %s", delivery.message_id)
            return Rejected(delivery, DeadLetterReason.UNDECODABLE_IMAGE, f"decoder failed: {error!r}")
        finally:
            self.metrics.stage_seconds.labels(stage="decode").observe(time.perf_counter() - started)

    def infer(self, items: list[Prepared | Rejected]) -> list[Outcome]:
        """One model pass for the prepared frames; rejected ones pass through in place."""
        ready = [item for item in items if isinstance(item, Prepared)]
        if not ready:
            return list(items)  # type: ignore[arg-type]
        try:
            decided = self._infer(ready)
        except Exception:
            log.exception("inference failed on a batch of %d; retrying its frames one by one", len(ready))
            decided = self._infer_one_by_one(ready)
        return [decided[id(item)] if isinstance(item, Prepared) else item for item in items]

    def _infer(self, ready: list[Prepared]) -> dict[int, Outcome]:
        started = time.perf_counter()
        model, decoder = self._serving  # read once: a hot reload swaps them between batches
        outcomes: dict[int, Outcome] = {}
        if decoder is None:
            batch = to_model_input([view for item in ready for view in item.pixels], model.manifest.input)
            prediction, counts = model.predict(batch), [len(item.pixels) for item in ready]
        else:
            ready, prediction, counts = self._predict_on_device(model, decoder, ready, outcomes)
            if not ready:
                return outcomes
        prediction = combine_views(prediction, counts, self.settings.view_combination)
        decisions = model.decide(prediction)
        self.metrics.stage_seconds.labels(stage="inference").observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(sum(counts))
        now_ns = time.time_ns()
        for row, (item, decision, p, probs) in enumerate(
            zip(ready, decisions, prediction.p_organic, prediction.material_probs, strict=True)
        ):
            if item.frame.deadline_ns is not None and now_ns > item.frame.deadline_ns:
                # Deciding a frame past its deadline would fire the ejector at the wrong item.
                outcomes[id(item)] = Rejected(
                    item.frame.delivery, DeadLetterReason.EXPIRED, "deadline passed"
                )
                continue
            hazard = hazard_of(prediction.p_hazard, row)
            message = build_decision(item.frame, decision, float(p), probs.tolist(), model.version, now_ns,
                                     model.manifest.thresholds, hazard)  # fmt: skip
            outcomes[id(item)] = Decided(item.frame.delivery, message, self._review_why(message))
        if self.shadow is not None:
            self.shadow.offer([(item, outcomes[id(item)]) for item in ready if id(item) in outcomes])
        return outcomes

    def _review_why(self, message: DecisionMessage) -> str | None:
        """Items a person should label: those the model abstained on, and a small random audit."""
        if not self.settings.review:
            return None
        if message.residual_reason == ResidualReason.LOW_CONFIDENCE.value:
            return "abstained"
        return "audit" if self._audit.random() < self.settings.review_audit_share else None

    @staticmethod
    def _predict_on_device(
        model: CascadeModel, decoder: DeviceDecoder, ready: list[Prepared], outcomes: dict[int, Outcome]
    ) -> tuple[list[Prepared], Prediction | None, list[int]]:
        """Decode the batch's views on the device; an item with a view that does not decode is a
        dead letter (whole, to be replayed), as it is when decoded on the CPU."""
        owners = [index for index, item in enumerate(ready) for _ in item.views]
        batch = decoder.batch([view for item in ready for view in item.views])
        broken = {owners[row]: detail for row, detail in batch.failed.items()}
        for index, detail in broken.items():
            outcomes[id(ready[index])] = Rejected(
                ready[index].frame.delivery, DeadLetterReason.UNDECODABLE_IMAGE, detail
            )
        kept = [index for index in range(len(ready)) if index not in broken]
        if not kept:
            return [], None, []
        rows = [position for position, row in enumerate(batch.decoded) if owners[row] not in broken]
        tensor = batch.tensor if len(rows) == len(batch.decoded) else batch.tensor[rows]
        counts = [len(ready[index].views) for index in kept]
        return [ready[index] for index in kept], model.predict_on_device(tensor), counts

    def _infer_one_by_one(self, ready: list[Prepared]) -> dict[int, Outcome]:
        """Isolate the frame that breaks inference so that its neighbours are still decided."""
        outcomes: dict[int, Outcome] = {}
        for item in ready:
            try:
                outcomes.update(self._infer([item]))
            except Exception as error:
                outcomes[id(item)] = self._poison_or_retry(item.frame.delivery, error)
        return outcomes

    @staticmethod
    def _poison_or_retry(delivery: Delivery, error: Exception) -> Rejected | Retry:
        deliveries = delivery_count(delivery) + 1
        if deliveries >= POISON_AFTER_DELIVERIES:
            return Rejected(
                delivery, DeadLetterReason.POISON, f"inference failed {deliveries} times: {error!r}"
            )
        return Retry(delivery, repr(error))


def delivery_count(delivery: Delivery) -> int:
    """Earlier deliveries of this frame, from the quorum queue's ``x-delivery-count`` header."""
    count = (delivery.headers or {}).get("x-delivery-count", 0)
    return count if isinstance(count, int) and not isinstance(count, bool) else 0
