"""Micro-batching semantics: a batch closes at max_batch items or max_delay after its first item."""

from __future__ import annotations

import threading
import time

import pytest

from classifier_worker.batcher import MicroBatcher


def batcher(max_batch: int, max_delay_s: float) -> MicroBatcher[tuple[float, int]]:
    return MicroBatcher(max_batch, max_delay_s, arrival=lambda item: item[0])


def test_a_full_queue_gives_full_batches_in_order() -> None:
    b = batcher(4, 0.05)
    for i in range(10):
        b.put((time.monotonic(), i))
    batches = [[i for _, i in b.next_batch(0.1)] for _ in range(4)]
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], []]


def test_a_lone_item_waits_at_most_max_delay() -> None:
    b = batcher(8, 0.05)
    b.put((time.monotonic(), 1))
    started = time.monotonic()
    assert [i for _, i in b.next_batch(1.0)] == [1]
    assert time.monotonic() - started < 0.5  # closed by the delay, not the idle timeout


def test_items_arriving_within_the_delay_join_the_batch() -> None:
    b = batcher(8, 0.3)
    b.put((time.monotonic(), 0))

    def later() -> None:
        time.sleep(0.05)
        b.put((time.monotonic(), 1))

    thread = threading.Thread(target=later)
    thread.start()
    batch = b.next_batch(1.0)
    thread.join()
    assert [i for _, i in batch] == [0, 1]


def test_an_item_that_waited_past_its_delay_does_not_wait_again() -> None:
    b = batcher(8, 0.2)
    b.put((time.monotonic() - 10.0, 0))  # arrived long ago: the batch is already due
    started = time.monotonic()
    assert len(b.next_batch(1.0)) == 1
    assert time.monotonic() - started < 0.1


def test_nothing_arriving_gives_an_empty_batch_after_the_idle_timeout() -> None:
    assert batcher(4, 0.01).next_batch(0.05) == []


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        MicroBatcher(0, 0.1, arrival=lambda item: 0.0)
