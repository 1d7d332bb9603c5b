"""Compare item events with a clip's truth: count, duplicates, misses, belt_x and seq errors."""

from __future__ import annotations

from collections.abc import Sequence

from sortline.belt import BELT_X_GATE, SEQ_GATE, Observed, TruthItem, match


def within(truth: Sequence[TruthItem], events: Sequence[Observed], first: int, last: int
           ) -> tuple[list[TruthItem], list[Observed]]:  # fmt: skip
    """The items a pipeline can be asked for (crossing after its warm-up, not in the clip's last
    frames) and the events that are not about the others."""
    pairs = dict((ei, ti) for ti, ei in match(truth, events))
    keep = [first <= t.seq <= last for t in truth]
    kept_events = [
        e for ei, e in enumerate(events)
        if (keep[pairs[ei]] if ei in pairs else first <= e.seq <= last + SEQ_GATE)
    ]  # fmt: skip
    return [t for t, k in zip(truth, keep, strict=True) if k], kept_events


def score(truth: Sequence[TruthItem], events: Sequence[Observed]) -> dict[str, float | int | None]:
    """Counting figures of one clip (errors over matched pairs)."""
    pairs = match(truth, events)
    matched_truth = {ti for ti, _ in pairs}
    matched_events = {ei for _, ei in pairs}
    extra = [ei for ei in range(len(events)) if ei not in matched_events]
    duplicates = sum(
        1 for ei in extra
        if any(abs(truth[ti].seq - events[ei].seq) <= SEQ_GATE and abs(truth[ti].belt_x - events[ei].belt_x)
               <= BELT_X_GATE for ti in matched_truth)
    )  # fmt: skip
    x_errors = [abs(truth[ti].belt_x - events[ei].belt_x) for ti, ei in pairs]
    seq_errors = [abs(truth[ti].seq - events[ei].seq) for ti, ei in pairs]
    return {
        "truth_items": len(truth),
        "events": len(events),
        "count_error_pct": round(100 * (len(events) - len(truth)) / len(truth), 2) if truth else None,
        "matched": len(pairs),
        "missed": len(truth) - len(matched_truth),
        "extra": len(extra),
        "duplicates": duplicates,
        "belt_x_err_mean": round(sum(x_errors) / len(x_errors), 4) if x_errors else None,
        "belt_x_err_max": round(max(x_errors), 4) if x_errors else None,
        "seq_err_mean": round(sum(seq_errors) / len(seq_errors), 2) if seq_errors else None,
        "seq_err_max": max(seq_errors) if seq_errors else None,
    }
