"""The whole line on the real RabbitMQ: camera-agent and classifier-worker CLIs, the committed model."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from sortline.messages import DecisionMessage
from sortline_dev.processes import AgentProcess, WorkerProcess
from sortline_dev.taps import decisions_tap
from tests.conftest import DEFAULT_MODEL, REPO

HAZARD_SAMPLES = REPO / "samples" / "hazard"

pytestmark = pytest.mark.broker


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


def test_200_replayed_images_come_back_as_exactly_200_decisions(amqp_url, line_id, sample_images, tmp_path):
    sources = build_replay_folder(tmp_path / "replay", sample_images, 200)
    agent = AgentProcess(amqp_url, line_id, tmp_path / "replay", "--fps", "0", camera_id="cam-7")
    with decisions_tap(amqp_url, line_id) as decisions, WorkerProcess(amqp_url, line_id) as worker:
        worker.wait_ready(timeout=60)
        with agent:
            assert agent.wait(timeout=120) == 0, agent.output()
        decisions.collect(200, timeout=120)
        received = decisions.settle(quiet=1.0)
        metrics = worker.metrics()
    assert worker.process.returncode == 0
    messages = [DecisionMessage.from_json(m.body) for m in received]
    assert len(messages) == 200
    assert {m.source for m in messages} == sources
    assert sorted(m.seq for m in messages) == list(range(200))
    assert all(m.camera_id == "cam-7" and m.line_id == line_id for m in messages)
    assert all(
        m.routing_key == f"decisions.{line_id}.{DecisionMessage.from_json(m.body).bin}" for m in received
    )
    assert metrics.total("sortline_decisions_total", line=line_id) == 200
    assert metrics.total("sortline_decision_latency_seconds_count", line=line_id) == 200
    assert metrics.total("sortline_inference_batch_size_sum") == 200
    version = messages[0].model_version
    assert metrics.total("sortline_model_info", version=version) == 1


def test_agent_publishes_until_sigterm_and_counts_frames_in_metrics(
    amqp_url, line_id, sample_images, tmp_path
):
    folder = tmp_path / "few"
    folder.mkdir()
    for image in sample_images[:3]:
        shutil.copy(image, folder / image.name)
    with AgentProcess(amqp_url, line_id, folder, "--fps", "50", "--loop") as agent:
        agent.wait_ready(timeout=60)
        time.sleep(1.0)
        metrics = agent.metrics()
    assert agent.process.returncode == 0  # SIGTERM: it finished and exited cleanly
    published = metrics.total("sortline_frames_published_total", line=line_id, camera="cam-1")
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


def test_batteries_go_through_the_line_to_the_hazard_bin_and_are_counted(amqp_url, line_id, tmp_path):
    replay = shutil.copytree(HAZARD_SAMPLES, tmp_path / "replay", ignore=shutil.ignore_patterns("*.md"))
    count = len(list(replay.rglob("*.jpg")))
    agent = AgentProcess(amqp_url, line_id, replay, "--fps", "0")
    with decisions_tap(amqp_url, line_id) as decisions, WorkerProcess(amqp_url, line_id) as worker:
        worker.wait_ready(timeout=60)
        with agent:
            assert agent.wait(timeout=120) == 0, agent.output()
        decisions.collect(count, timeout=120)
        received = decisions.settle(quiet=1.0)
        metrics = worker.metrics()
    messages = [DecisionMessage.from_json(m.body) for m in received]
    hazards = [m for m in messages if m.bin == "hazard"]
    assert len(messages) == count
    assert all(m.p_hazard is not None for m in messages)  # the committed model has a hazard output
    assert len(hazards) >= count - 1, [(m.source, m.bin, m.p_hazard) for m in messages]
    assert {m.bin for m in messages} <= {"hazard", "residual"}  # never a recyclable or organic bin
    for raw, message in zip(received, messages, strict=True):
        assert raw.routing_key == f"decisions.{line_id}.{message.bin}"
    assert metrics.total("sortline_hazard_items_total", line=line_id) == len(hazards)
