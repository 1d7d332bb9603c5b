"""AckWindow: consecutive confirmed frames become one multiple ack, and no frame is acked early."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from classifier_worker.acks import Acks, AckWindow


def window_of(count: int) -> AckWindow:
    window = AckWindow()
    for tag in range(1, count + 1):
        window.delivered(tag)
    return window


def test_a_confirmed_run_from_the_oldest_frame_is_one_multiple_ack() -> None:
    window = window_of(5)
    for tag in (3, 1, 2):
        window.confirmed(tag)
    assert window.take() == Acks(up_to=3, singles=[])
    assert len(window) == 2


def test_a_frame_confirmed_out_of_order_is_acked_on_its_own_at_once() -> None:
    window = window_of(4)
    window.confirmed(3)
    assert window.take() == Acks(up_to=None, singles=[3])
    window.confirmed(1)
    window.confirmed(2)
    # 3 was acked already: the multiple ack covers 1-2 only, and 3 is not acked twice.
    assert window.take() == Acks(up_to=2, singles=[])
    window.confirmed(4)
    assert window.take() == Acks(up_to=4, singles=[])
    assert len(window) == 0


def test_a_released_frame_is_passed_over_not_acked() -> None:
    window = window_of(3)
    window.released(1)
    assert window.take() == Acks()
    window.confirmed(3)
    window.released(2)
    assert window.take() == Acks(up_to=3, singles=[])
    assert len(window) == 0


@given(st.permutations(range(1, 41)), st.sets(st.integers(1, 40)), st.integers(1, 8))
def test_acks_settle_exactly_the_confirmed_frames(order, released, take_every) -> None:
    """Against a model of the broker's unacked set: an ack never names a frame that is not
    outstanding, never covers an unconfirmed one, and in the end every confirmed frame is acked."""
    window = window_of(40)
    outstanding, confirmed = set(range(1, 41)), set()
    for step, tag in enumerate(order, start=1):
        if tag in released:
            window.released(tag)
            outstanding.discard(tag)  # the consumer nacked it
        else:
            window.confirmed(tag)
            confirmed.add(tag)
        if step % take_every == 0 or step == len(order):
            acks = window.take()
            if acks.up_to is not None:
                assert acks.up_to in outstanding
                covered = {t for t in outstanding if t <= acks.up_to}
                assert covered <= confirmed
                outstanding -= covered
            for single in acks.singles:
                assert single in outstanding and single in confirmed
                outstanding.discard(single)
    assert outstanding == set()
    assert len(window) == 0
