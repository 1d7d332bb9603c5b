"""/healthz and /readyz: what each process reports, on its real metrics port.

Unit tests drive :mod:`sortline.health` with checks whose state the test sets; the process tests
start a real worker and camera agent, with and without a broker, and a worker whose inference
stalls (a model that sleeps) in the test process.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from camera_agent.health import agent_health, capture_stall_seconds
from classifier_worker import health as worker_health_module
from classifier_worker.health import worker_health
from sortline.health import Health, Heartbeat, probe, serve
from sortline_dev.metrics import scrape_port
from sortline_dev.processes import AgentProcess, WorkerProcess, free_port
from sortline_runtime.model import CascadeModel
from tests.support.workers import running_worker
from tests.test_processor import FlakyModel

#: Nothing listens here: a broker URL that points nowhere (as a missing secret once did).
NOWHERE = "amqp://guest:guest@127.0.0.1:1/%2F"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_heartbeat_goes_stale_without_beats() -> None:
    clock = FakeClock()
    heartbeat = Heartbeat(clock)
    check = heartbeat.check("the loop", max_age=5)
    assert check() is None
    clock.now += 6
    assert check() == "the loop has not moved for 6 s (limit 5 s)"
    heartbeat.beat()
    assert check() is None


def test_liveness_ignores_readiness_checks_and_a_broken_check_fails() -> None:
    def broken() -> str | None:
        raise RuntimeError("bug")

    health = Health(live={"loop": lambda: None}, ready={"broker": lambda: "down", "odd": broken})
    assert health.failing(readiness=False) == []
    assert health.failing(readiness=True) == ["broker: down", "odd: check raised RuntimeError('bug')"]
    assert dict(health.states()) == {"loop": True, "broker": False, "odd": False}


def test_endpoints_answer_by_their_checks() -> None:
    state = {"broker": "not connected"}
    health = Health(live={"loop": lambda: None}, ready={"broker": lambda: state["broker"]})
    registry = CollectorRegistry()
    port = free_port()
    server = serve(port, registry, health, host="127.0.0.1")
    try:
        base = f"http://127.0.0.1:{port}"
        assert probe(f"{base}/healthz") == (True, "ok\n")
        assert probe(f"{base}/readyz") == (False, "broker: not connected\n")
        scraped = scrape_port(port)
        assert scraped.values("sortline_health_check", "check") == {"loop": 1.0, "broker": 0.0}
        (info,) = [s for s in scraped.samples if s.name == "sortline_build_info"]
        assert info.labels["version"] and info.labels["revision"] and info.labels["python"]
        state["broker"] = None
        assert probe(f"{base}/readyz") == (True, "ok\n")
        assert scrape_port(port).values("sortline_health_check", "check")["broker"] == 1.0
        assert probe(f"{base}/nothing")[0] is False
    finally:
        server.shutdown()
        server.server_close()


def test_probe_command_exit_codes() -> None:
    health = Health(ready={"broker": lambda: "not connected"})
    port = free_port()
    server = serve(port, CollectorRegistry(), health, host="127.0.0.1")
    try:

        def run(path: str) -> subprocess.CompletedProcess[str]:
            url = f"http://127.0.0.1:{port}{path}"
            command = [sys.executable, "-m", "sortline.health", url]
            return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)

        assert run("/healthz").returncode == 0
        refused = run("/readyz")
        assert refused.returncode == 1 and "broker: not connected" in refused.stderr
    finally:
        server.shutdown()
        server.server_close()
    assert run("/healthz").returncode == 1  # nothing answers any more


def test_agent_capture_check() -> None:
    clock = FakeClock()
    agent = SimpleNamespace(
        settings=SimpleNamespace(fps=10.0, buffer_frames=3),
        capture_heartbeat=Heartbeat(clock),
        buffer=[],
        publisher=SimpleNamespace(connected=False),
    )
    health = agent_health(agent)
    assert health.failing(readiness=True) == ["broker: not connected to the broker"]
    clock.now += 25
    assert health.failing(readiness=False) == [
        "capture: the capture loop has not moved for 25 s (limit 20 s)"
    ]
    agent.buffer = [1, 2, 3]  # full: waiting for the broker, not stuck on the source
    assert health.failing(readiness=False) == []
    assert capture_stall_seconds(0.5) == 40.0


def _wait_for(url: str, healthy: bool, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        answered, text = probe(url)
        if answered == healthy:
            return text
        assert time.monotonic() < deadline, f"{url} stayed {'un' if healthy else ''}healthy: {text}"
        time.sleep(0.2)


@pytest.mark.broker
def test_worker_is_ready_only_while_it_consumes(amqp_url: str, line_id: str, tiny_model_dir: Path) -> None:
    with WorkerProcess(amqp_url, line_id, tiny_model_dir) as worker:
        worker.wait_ready()
        base = f"http://127.0.0.1:{worker.metrics_port}"
        assert _wait_for(f"{base}/readyz", True) == "ok\n"
        assert probe(f"{base}/healthz") == (True, "ok\n")


def test_worker_without_a_broker_is_alive_but_not_ready(tiny_model_dir: Path) -> None:
    with WorkerProcess(NOWHERE, "line-1", tiny_model_dir) as worker:
        worker.wait_ready()
        base = f"http://127.0.0.1:{worker.metrics_port}"
        text = _wait_for(f"{base}/readyz", False)
        assert "broker: not consuming sortline.frames.line-1" in text
        assert probe(f"{base}/healthz") == (True, "ok\n")  # a restart would not bring the broker back
        assert worker.metrics().values("sortline_health_check", "check")["broker"] == 0.0


def test_agent_without_a_broker_is_not_ready(sample_images: list[Path]) -> None:
    with AgentProcess(NOWHERE, "line-1", sample_images[0].parent, "--loop") as agent:
        base = f"http://127.0.0.1:{agent.metrics_port}"
        agent.wait_ready(ready_metric="sortline_health_check")
        assert "broker: not connected to the broker" in _wait_for(f"{base}/readyz", False)


@pytest.mark.broker
def test_agent_publishing_is_ready(amqp_url: str, line_id: str, sample_images: list[Path]) -> None:
    with AgentProcess(amqp_url, line_id, sample_images[0].parent, "--loop", "--fps", "5") as agent:
        agent.wait_ready(ready_metric="sortline_health_check")
        base = f"http://127.0.0.1:{agent.metrics_port}"
        assert _wait_for(f"{base}/readyz", True) == "ok\n"


@pytest.mark.broker
def test_stalled_inference_fails_liveness(
    amqp_url: str, line_id: str, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model pass that takes far longer than the limit: the inference loop stops turning."""
    from sortline_dev.publishing import frame_headers, publish_frames
    from tests.test_worker_broker import jpeg

    monkeypatch.setattr(worker_health_module, "INFERENCE_STALL_SECONDS", 0.5)
    stuck = FlakyModel(CascadeModel.load(tiny_model_dir), delay_s=3.0)
    with running_worker(amqp_url, line_id, tiny_model_dir, model=stuck, max_batch=1) as worker:
        health = worker_health(worker)
        assert health.failing(readiness=True) == []
        publish_frames(amqp_url, line_id, [(jpeg((0, 90, 0)), frame_headers(line_id, 0), "image/jpeg")])
        deadline = time.monotonic() + 10
        while not health.failing(readiness=False):
            assert time.monotonic() < deadline, "a 3 s model pass never failed the 0.5 s liveness check"
            time.sleep(0.1)
        assert health.failing(readiness=False)[0].startswith("inference: the inference loop has not moved")
