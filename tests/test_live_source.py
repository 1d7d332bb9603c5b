"""A live camera (MJPEG over HTTP) through the camera agent: newest frames, stamped at grab; the
stream killed and restarted mid-run reconnects without a restart; one gone for good ends the agent."""

from __future__ import annotations

import time

import pika
import pytest

from sortline.topology import frames_queue
from sortline_dev.processes import AgentProcess
from tests.support.mjpeg import MjpegCamera

pytestmark = pytest.mark.broker


def queued_headers(amqp_url: str, line_id: str) -> list[dict]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    headers = []
    while (message := channel.basic_get(frames_queue(line_id), auto_ack=True))[0] is not None:
        headers.append(message[1].headers)
    connection.close()
    return headers


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_a_stream_killed_and_restarted_comes_back_without_restarting_the_agent(amqp_url, line_id):
    camera = MjpegCamera(fps=30).start()
    agent = AgentProcess(amqp_url, line_id, camera.url, "--fps", "5", "--max-retry-seconds", "1",
                         "--source-give-up-s", "60")  # fmt: skip
    with agent:
        agent.wait_ready(timeout=60)

        def published() -> float:
            return agent.metrics().total("sortline_frames_published_total")

        wait_until(lambda: published() >= 5, 30, "no frames from the stream")
        camera.stop()
        time.sleep(2)
        before = published()
        camera.start()
        wait_until(lambda: published() >= before + 5, 45, "frames did not resume after the stream came back")
        metrics = agent.metrics()
    assert agent.process.returncode == 0, agent.output()[-2000:]
    assert metrics.total("sortline_camera_reconnects_total") >= 1
    # The camera sends 30 fps, the agent publishes 5: it takes the newest and counts the rest.
    skipped = metrics.total("sortline_camera_frames_skipped_total")
    assert skipped > metrics.total("sortline_frames_published_total")
    headers = queued_headers(amqp_url, line_id)  # those of the last 3 s: older ones expired in the queue
    assert headers
    # Stamped at grab: a live frame's deadline is its capture time plus the default 3 s.
    assert all(h["deadline_ns"] - h["captured_at_ns"] == 3_000_000_000 for h in headers)


def test_a_stream_gone_for_longer_than_the_give_up_ends_the_agent_with_exit_3(amqp_url, line_id):
    camera = MjpegCamera(fps=30).start()
    agent = AgentProcess(amqp_url, line_id, camera.url, "--fps", "5", "--max-retry-seconds", "0.5",
                         "--source-give-up-s", "3")  # fmt: skip
    with agent:
        agent.wait_ready(timeout=60)
        wait_until(lambda: agent.metrics().total("sortline_frames_published_total") >= 3, 30, "no frames")
        camera.stop()
        assert agent.wait(timeout=40) == 3
    assert "unreachable for 3 s; giving up" in agent.output()
