"""Shadow mode: a candidate model looks at a share of the line's items beside the serving model.

Its answers never become decisions. They are compared with the decisions the line made
(``sortline_shadow_decisions_total{line,current_bin,candidate_bin}``: agreement overall, per bin,
the whole confusion), and where the two disagree the item goes to review with both answers.

The candidate must not slow the line: it runs on a thread of its own at a lower scheduling
priority, its ONNX Runtime session on one thread, fed through a short queue; when the queue is full
the items are skipped (counted), never waited for. Only items decoded on the CPU are looked at
(their pixels are at hand; a GPU batch decoded on the device keeps none).
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
from collections.abc import Callable

from classifier_worker.decisions import build_decision, hazard_of
from classifier_worker.metrics import WorkerMetrics
from classifier_worker.views import Combination, combine_views
from sortline_runtime.imaging import to_model_input
from sortline_runtime.model import CascadeModel

log = logging.getLogger(__name__)

#: Batches waiting for the candidate; beyond this the shadow falls behind and skips.
QUEUE_BATCHES = 4
#: Nice value of the shadow thread: the line's threads get the cores first.
NICENESS = 10


class ShadowRunner:
    """``offer`` from the inference thread; the candidate runs on ``shadow``'s thread."""

    def __init__(
        self,
        load_candidate: Callable[[], CascadeModel | None],
        share: float,
        combination: Combination,
        metrics: WorkerMetrics,
        line_id: str,
        on_disagreement: Callable[[object, object, object], None],
    ) -> None:
        self._load = load_candidate
        self._share, self._combination = share, combination
        self.metrics, self.line_id = metrics, line_id
        self._on_disagreement = on_disagreement  # (delivery, decision, candidate decision)
        metrics.shadow_skipped.labels(line=line_id)  # exported at 0: a rate of skips from the start
        self._model: CascadeModel | None = None
        self._queue: queue.Queue[list[tuple[object, object]] | None] = queue.Queue(QUEUE_BATCHES)
        self._pick = random.Random()
        self._reload_wanted = threading.Event()
        self._reload_wanted.set()  # the first look, on the shadow's own thread
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
        self._thread.start()

    def reload_later(self) -> None:
        """From any thread (a promotion event, a reconnection): look at the registry's candidate again."""
        self._reload_wanted.set()

    def reload(self) -> None:
        """Load the registry's candidate now (none: the trial is over); a failure keeps none."""
        try:
            model = self._load()
        except Exception as error:  # a bad candidate must not touch the line
            log.error("shadow candidate not loaded: %s: %s", type(error).__name__, error)
            model = None
        if model is not None:
            model.warm_up((1,))
        self._model = model
        self.metrics.set_shadow_model(model.version if model else None)
        log.info("shadow candidate: %s", model.version if model else "none")

    def offer(self, decided: list[tuple[object, object]]) -> None:
        """(prepared item, its outcome) pairs of one batch; a share of the decided ones is tried."""
        if self._model is None:
            return  # no candidate on trial
        chosen = [(item, outcome) for item, outcome in decided
                  if getattr(outcome, "message", None) is not None and item.pixels is not None
                  and self._pick.random() < self._share]  # fmt: skip
        if not chosen:
            return
        try:
            self._queue.put_nowait(chosen)
        except queue.Full:
            self.metrics.shadow_skipped.labels(line=self.line_id).inc(len(chosen))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(10)

    def _run(self) -> None:
        try:  # Linux schedules threads as tasks: this lowers this thread's priority only
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
        except (OSError, AttributeError):
            log.debug("cannot lower the shadow thread's priority here")
        while True:
            if self._reload_wanted.is_set():
                self._reload_wanted.clear()
                self.reload()
            try:
                batch = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if batch is None:
                return
            model = self._model
            if model is None:
                continue
            try:
                self._compare(model, batch)
            except Exception:  # a candidate that fails is the trial's problem, not the line's
                log.exception("shadow candidate failed on a batch")

    def _compare(self, model: CascadeModel, batch: list[tuple[object, object]]) -> None:
        pixels = [view for item, _ in batch for view in item.pixels]
        prediction = model.predict(to_model_input(pixels, model.manifest.input))
        prediction = combine_views(prediction, [len(item.pixels) for item, _ in batch], self._combination)
        answers = model.decide(prediction)
        for row, ((item, outcome), answer, p, probs) in enumerate(
            zip(batch, answers, prediction.p_organic, prediction.material_probs, strict=True)
        ):
            current = outcome.message.bin
            agreed = "yes" if answer.bin == current else "no"
            self.metrics.shadow_decisions.labels(
                line=self.line_id, current_bin=current, candidate_bin=answer.bin, agreed=agreed
            ).inc()
            if answer.bin != current:
                candidate = build_decision(item.frame, answer, float(p), probs.tolist(), model.version,
                                           None, model.manifest.thresholds,
                                           hazard_of(prediction.p_hazard, row))  # fmt: skip
                self._on_disagreement(item.frame.delivery, outcome.message, candidate)
