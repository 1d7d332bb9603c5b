"""A frame id seen in flight or lately settled is a repeat; one given back to the broker is not."""

from __future__ import annotations

from sortline.dedup import RecentFrames


def test_a_repeat_is_caught_in_flight_and_after_settling() -> None:
    recent = RecentFrames(capacity=10)
    assert recent.begin("a")
    assert not recent.begin("a")  # in flight
    recent.settled("a")
    assert not recent.begin("a")  # decided


def test_a_requeued_frame_is_not_a_repeat_when_it_comes_back() -> None:
    recent = RecentFrames(capacity=10)
    assert recent.begin("a")
    recent.released("a")
    assert recent.begin("a")


def test_the_memory_holds_the_last_capacity_settled_ids() -> None:
    recent = RecentFrames(capacity=3)
    for key in "abcd":
        assert recent.begin(key)
        recent.settled(key)
    assert recent.begin("a")  # evicted, oldest first
    assert not recent.begin("d")


def test_a_lost_channel_forgets_what_was_in_flight() -> None:
    recent = RecentFrames(capacity=3)
    recent.begin("a")
    recent.forget_in_flight()
    assert recent.begin("a")


def test_frames_without_an_id_and_a_zero_capacity_never_repeat() -> None:
    assert RecentFrames(capacity=3).begin(None) and RecentFrames(capacity=3).begin(None)
    off = RecentFrames(capacity=0)
    off.begin("a")
    off.settled("a")
    assert off.begin("a")
