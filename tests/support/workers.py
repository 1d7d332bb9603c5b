"""A worker in a thread of the test process: the worker the CLI builds, with its registry at hand.

Tests that need the process itself (exit codes, signals, /metrics) use
:class:`sortline_dev.processes.WorkerProcess` instead.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from classifier_worker.service import Worker, build_worker
from classifier_worker.settings import WorkerSettings
from sortline_runtime.model import CascadeModel


@contextmanager
def running_worker(
    amqp_url: str, line_id: str, model_dir: Path, model: Any = None, **overrides: Any
) -> Iterator[Worker]:
    """The worker the CLI runs (``build_worker``), in a thread of this process; ``model`` may wrap one."""
    settings = WorkerSettings(
        amqp_url=amqp_url, line_id=line_id, model=model_dir, metrics_port=0, **overrides
    )
    with build_worker(settings, model or CascadeModel.load(model_dir)) as worker:
        thread = threading.Thread(target=worker.run, name=f"worker-{line_id}", daemon=True)
        thread.start()
        assert worker.consumer.ready.wait(10), "worker did not start consuming"
        try:
            yield worker
        finally:
            worker.stop.set()
            thread.join(15)
            assert not thread.is_alive(), "worker did not stop"
