"""Confirm tracking: single and multiple acks, nacks, and unknown sequence numbers."""

from __future__ import annotations

from types import SimpleNamespace

from pika.spec import Basic

from classifier_worker.confirms import ConfirmTracker


def confirm(method) -> SimpleNamespace:
    return SimpleNamespace(method=method)


def test_single_and_multiple_acks_settle_in_send_order() -> None:
    tracker: ConfirmTracker[str] = ConfirmTracker()
    for item in "abcd":
        tracker.sent(item)
    tracker.on_confirm(confirm(Basic.Ack(delivery_tag=2, multiple=False)))
    assert tracker.take_settled() == [("b", True)]
    tracker.on_confirm(confirm(Basic.Ack(delivery_tag=3, multiple=True)))
    assert tracker.take_settled() == [("a", True), ("c", True)]
    assert len(tracker) == 1


def test_a_nack_settles_as_not_confirmed() -> None:
    tracker: ConfirmTracker[str] = ConfirmTracker()
    tracker.sent("a")
    tracker.on_confirm(confirm(Basic.Nack(delivery_tag=1, multiple=False)))
    assert tracker.take_settled() == [("a", False)]
    assert tracker.take_settled() == []


def test_a_confirm_for_an_unknown_sequence_is_ignored() -> None:
    tracker: ConfirmTracker[str] = ConfirmTracker()
    tracker.sent("a")
    tracker.on_confirm(confirm(Basic.Ack(delivery_tag=7, multiple=False)))
    assert tracker.take_settled() == [] and len(tracker) == 1
