"""Models through their lifecycle on a running line: two workers serving a registry under a steady
stream of frames, through a promotion, a rollback, a corrupt version and a worker that was away."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from sortline.registry import CURRENT, ModelRegistry
from sortline_dev.processes import WorkerProcess
from sortline_dev.publishing import frame_headers, publish_frames
from sortline_dev.taps import dead_letter_tap, decisions_tap
from tests.support.sites import imported_site
from tests.test_faults import close_connections_named, needs_rabbitmqctl
from tests.tiny_model import write_tiny_model
from trainer.cli import main as trainer_main

pytestmark = pytest.mark.broker

#: Every worker must decide with the new version this soon after the promotion is announced.
SWAP_WITHIN_S = 5.0
GREEN = cv2.imencode(".jpg", np.full((64, 64, 3), (0, 200, 0), dtype=np.uint8))[1].tobytes()


class SteadyStream:
    """Frames published at ``rate`` a second on a thread of its own, until stopped."""

    def __init__(self, amqp_url: str, line_id: str, rate: float = 40.0) -> None:
        self.amqp_url, self.line_id, self.rate = amqp_url, line_id, rate
        self.ids: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        seq = 0
        while not self._stop.is_set():
            batch = [(GREEN, frame_headers(self.line_id, seq + i), "image/jpeg") for i in range(4)]
            self.ids += publish_frames(self.amqp_url, self.line_id, batch)
            seq += 4
            self._stop.wait(4 / self.rate)

    def __enter__(self) -> SteadyStream:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def serving(worker: WorkerProcess) -> set[str]:
    return {v for v, on in worker.metrics().values("sortline_model_info", "version").items() if on}


def seconds_until_all_serve(workers: list[WorkerProcess], version: str, timeout: float = 30.0) -> float:
    started = time.monotonic()
    while not all(serving(w) == {version} for w in workers):
        assert time.monotonic() - started < timeout, [serving(w) for w in workers]
        time.sleep(0.05)
    return time.monotonic() - started


def lifecycle(amqp_url: str, registry: Path, *args: str) -> int:
    return trainer_main([*args, "--registry", str(registry), "--amqp-url", amqp_url])


@needs_rabbitmqctl
def test_promotion_rollback_and_a_corrupt_version_under_a_steady_stream(amqp_url, line_id, tmp_path):
    registry = tmp_path / "registry"
    for index, seed in ((1, 0), (2, 1), (3, 2)):
        model = write_tiny_model(tmp_path / f"m{index}", version=f"tiny-{index}", seed=seed)
        assert trainer_main(["publish", "--model", str(model), "--registry", str(registry)]) == 0
    assert lifecycle(amqp_url, registry, "promote", "--model-version", "1", "--force", "--no-announce") == 0
    workers = [WorkerProcess(amqp_url, line_id, registry, "--max-batch", "4") for _ in range(2)]
    swaps = {}
    with (
        decisions_tap(amqp_url, line_id) as decided,
        dead_letter_tap(amqp_url, line_id) as dead,
        workers[0],
        workers[1],
    ):
        for worker in workers:
            worker.wait_ready(timeout=60)
        with SteadyStream(amqp_url, line_id) as stream:
            time.sleep(1)
            assert lifecycle(amqp_url, registry, "promote", "--model-version", "2", "--force") == 0
            swaps["promote"] = seconds_until_all_serve(workers, "tiny-2")
            time.sleep(1)  # frames decided by the new version
            assert lifecycle(amqp_url, registry, "rollback") == 0
            swaps["rollback"] = seconds_until_all_serve(workers, "tiny-1")
            # a version whose file rots on disk after it was published: refused, tiny-1 serves on
            (registry / "versions" / "0003-tiny-3" / "model.onnx").write_bytes(b"rotten")
            assert lifecycle(amqp_url, registry, "promote", "--model-version", "3", "--force") == 0
            time.sleep(2)
            assert all(serving(w) == {"tiny-1"} for w in workers)
            time.sleep(1)
        failed = [w.metrics().total("sortline_model_reloads_total", result="failed") for w in workers]
        decided.collect(len(stream.ids), timeout=30)
        decided.settle(quiet=1.0)
    versions = [r.decision().model_version for r in decided.received]
    print(f"swap seconds: {swaps}; {len(stream.ids)} frames, {len(versions)} decisions")
    assert sorted(r.properties.message_id for r in decided.received) == sorted(
        stream.ids
    )  # none lost, none twice
    assert dead.received == []  # none failed
    assert {"tiny-1", "tiny-2"} <= set(versions) and "tiny-3" not in versions
    assert all(seconds <= SWAP_WITHIN_S for seconds in swaps.values()), swaps
    assert failed == [1.0, 1.0]


@needs_rabbitmqctl
def test_a_worker_that_missed_the_promotion_catches_up_when_it_reconnects(amqp_url, tmp_path):
    """On a site of its own (no other test's promotion events reach it), as the worker role."""
    registry = tmp_path / "registry"
    for index, seed in ((1, 0), (2, 1)):
        model = write_tiny_model(tmp_path / f"m{index}", version=f"tiny-{index}", seed=seed)
        assert trainer_main(["publish", "--model", str(model), "--registry", str(registry)]) == 0
    ModelRegistry(registry).point(CURRENT, ModelRegistry(registry).find("1"), "promote")
    with imported_site(amqp_url, ["line-1"]) as site:
        worker = WorkerProcess(site.url("worker", "line-1"), "line-1", registry, "--topology", "check",
                               "--max-retry-seconds", "1")  # fmt: skip
        with worker:
            worker.wait_serving(timeout=60)  # connected, and done with its look at the registry
            time.sleep(0.5)
            # current moves while no event reaches the worker (say, the broker was down)
            ModelRegistry(registry).point(CURRENT, ModelRegistry(registry).find("2"), "promote")
            time.sleep(1.5)
            assert serving(worker) == {"tiny-1"}
            assert close_connections_named(f"pid={worker.process.pid}") == 1
            assert seconds_until_all_serve([worker], "tiny-2") <= SWAP_WITHIN_S  # the look at reconnection
