"""The agent's buffer between capture and publishing: drop-oldest for live cameras, waiting for replays."""

from __future__ import annotations

import threading
import time

import pytest

from camera_agent.buffer import FrameBuffer


def test_a_live_camera_drops_the_oldest_frames_and_counts_them() -> None:
    dropped: list[int] = []
    buffer: FrameBuffer[int] = FrameBuffer(3, on_drop=dropped.append)
    for i in range(5):
        assert buffer.put(i, drop_oldest=True)
    assert dropped == [0, 1]
    assert [buffer.get(0.01) for _ in range(3)] == [2, 3, 4]


def test_a_replay_waits_for_room_instead_of_dropping() -> None:
    buffer: FrameBuffer[int] = FrameBuffer(1)
    buffer.put(0, drop_oldest=False)
    done = threading.Event()

    def producer() -> None:
        buffer.put(1, drop_oldest=False)
        done.set()

    thread = threading.Thread(target=producer)
    thread.start()
    assert not done.wait(0.2)  # blocked: the buffer is full
    assert buffer.get(0.1) == 0
    assert done.wait(2)
    thread.join()
    assert buffer.get(0.1) == 1


def test_a_waiting_put_gives_up_when_stopped() -> None:
    buffer: FrameBuffer[int] = FrameBuffer(1)
    buffer.put(0, drop_oldest=False)
    stop = threading.Event()
    stop.set()
    assert buffer.put(1, drop_oldest=False, stop=stop) is False
    assert len(buffer) == 1


def test_close_lets_the_consumer_finish_what_is_left() -> None:
    buffer: FrameBuffer[int] = FrameBuffer(4)
    buffer.put(7, drop_oldest=False)
    buffer.close()
    assert not buffer.drained
    assert buffer.get(0.01) == 7
    started = time.monotonic()
    assert buffer.get(5.0) is None  # closed and empty: no waiting
    assert time.monotonic() - started < 1.0
    assert buffer.drained


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FrameBuffer(0)
