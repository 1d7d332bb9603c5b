"""The whole line on the real RabbitMQ: camera-agent and classifier-worker CLIs, the committed model."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import pytest

from sortline.messages import DecisionMessage
from tests.broker_tools import decisions_tap
from tests.conftest import DEFAULT_MODEL

pytestmark = pytest.mark.broker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for match in re.finditer(rf"^{name}(?:{{(.*?)}})? (\S+)$", text, re.MULTILINE):
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


def build_replay_folder(folder: Path, sample_images: list[Path], count: int) -> set[str]:
    """``count`` distinct images in DIR/<label>/ form, made from the sample by flips and rotations."""
    sources = set()
    variants = [None, cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_180, cv2.ROTATE_90_COUNTERCLOCKWISE, "flip"]
    for index in range(count):
        original = sample_images[index % len(sample_images)]
        image = cv2.imread(str(original))
        variant = variants[(index // len(sample_images)) % len(variants)]
        image = (
            cv2.flip(image, 1)
            if variant == "flip"
            else image
            if variant is None
            else cv2.rotate(image, variant)
        )
        relative = f"{original.parent.name}/{index:04d}-{original.stem}.jpg"
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / relative), image)
        sources.add(relative)
    return sources


def start_worker(amqp_url: str, line_id: str, metrics_port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "classifier_worker.cli", "--line-id", line_id,
         "--metrics-port", str(metrics_port), "--log-level", "WARNING"],
        env={**os.environ, "AMQP_URL": amqp_url},
    )  # fmt: skip


def wait_for_metrics(port: int, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return scrape(port)
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"no /metrics on port {port}")


def test_200_replayed_images_come_back_as_exactly_200_decisions(amqp_url, line_id, sample_images, tmp_path):
    sources = build_replay_folder(tmp_path / "replay", sample_images, 200)
    port = free_port()
    with decisions_tap(amqp_url, line_id) as decisions:
        worker = start_worker(amqp_url, line_id, port)
        try:
            wait_for_metrics(port)
            agent = subprocess.run(
                [sys.executable, "-m", "camera_agent.cli", "--source", str(tmp_path / "replay"),
                 "--line-id", line_id, "--camera-id", "cam-7", "--fps", "0", "--metrics-port", "0"],
                env={**os.environ, "AMQP_URL": amqp_url}, timeout=120, capture_output=True, text=True,
            )  # fmt: skip
            assert agent.returncode == 0, agent.stderr
            decisions.collect(200, timeout=120)
            received = decisions.settle(quiet=1.0)
            metrics = scrape(port)
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0
    messages = [DecisionMessage.from_json(m.body) for m in received]
    assert len(messages) == 200
    assert {m.source for m in messages} == sources
    assert sorted(m.seq for m in messages) == list(range(200))
    assert all(m.camera_id == "cam-7" and m.line_id == line_id for m in messages)
    assert all(
        m.routing_key == f"decisions.{line_id}.{DecisionMessage.from_json(m.body).bin}" for m in received
    )
    assert metric_value(metrics, "sortline_decisions_total", line=line_id) == 200
    assert metric_value(metrics, "sortline_decision_latency_seconds_count", line=line_id) == 200
    assert metric_value(metrics, "sortline_inference_batch_size_sum") == 200
    version = messages[0].model_version
    assert metric_value(metrics, "sortline_model_info", version=version) == 1


def test_agent_publishes_until_sigterm_and_counts_frames_in_metrics(
    amqp_url, line_id, sample_images, tmp_path
):
    folder = tmp_path / "few"
    folder.mkdir()
    for image in sample_images[:3]:
        shutil.copy(image, folder / image.name)
    port = free_port()
    agent = subprocess.Popen(
        [sys.executable, "-m", "camera_agent.cli", "--source", str(folder), "--line-id", line_id,
         "--fps", "50", "--loop", "--metrics-port", str(port)],
        env={**os.environ, "AMQP_URL": amqp_url},
    )  # fmt: skip
    try:
        wait_for_metrics(port)
        time.sleep(1.0)
        text = scrape(port)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=20) == 0
    finally:
        agent.kill()
    published = metric_value(text, "sortline_frames_published_total", line=line_id, camera="cam-1")
    assert 10 <= published <= 80  # 50 fps for about a second, looping over 3 images


@pytest.mark.parametrize("source", ["/no/such/folder", "rtsp://127.0.0.1:1/none"])
def test_a_source_that_cannot_be_opened_exits_2_with_a_clear_error(source, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "camera_agent.cli", "--source", source, "--metrics-port", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert source in result.stderr


def test_an_empty_folder_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "camera_agent.cli", "--source", str(tmp_path), "--metrics-port", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "holds no images" in result.stderr


def test_worker_refuses_a_tampered_model_with_exit_2(tmp_path):
    tampered = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, tampered)
    with (tampered / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    result = subprocess.run(
        [sys.executable, "-m", "classifier_worker.cli", "--model", str(tampered), "--metrics-port", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "sha256" in result.stderr
