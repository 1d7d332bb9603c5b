"""The worker's health checks (served by :mod:`sortline.health` on its metrics port).

- liveness ``inference``: the inference loop turns at least every ``INFERENCE_STALL_SECONDS``
  (it turns every few milliseconds when idle, once per batch when busy); a stuck model or a
  deadlock fails it, and a restart is what helps;
- readiness ``broker``: connected to the broker and consuming the line's frames queue. A worker
  whose broker is away, whose credentials are wrong or whose URL points nowhere is not ready.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sortline.health import Health
from sortline.topology import frames_queue

if TYPE_CHECKING:
    from classifier_worker.service import Worker

#: Longer than any batch takes (a 256-frame batch on one slow core is a few seconds).
INFERENCE_STALL_SECONDS = 30.0


def worker_health(worker: Worker) -> Health:
    consumer = worker.consumer
    queue = frames_queue(worker.settings.line_id)

    def consuming() -> str | None:
        return None if consumer.ready.is_set() else f"not consuming {queue} (broker not connected)"

    return Health(
        live={"inference": consumer.inference_heartbeat.check("the inference loop", INFERENCE_STALL_SECONDS)},
        ready={"broker": consuming},
    )
