"""The trigger line: an item is counted once, in the frame where its centre reaches the line.

Positions are ``along`` fractions of the ROI (0 upstream, 1 downstream; see ``geometry``), so one
rule serves every belt direction: the centre was before the line in the previous observation and
is at or past it now. Observations may be frames apart (flicker, skipped frames); the crossing
instant is then interpolated between them, which is what an ejector's timing needs.
"""

from __future__ import annotations


def crossed(previous_along: float, along: float, trigger: float) -> bool:
    """True when the centre moved from before the line to on or past it."""
    return previous_along < trigger <= along


def crossing_time_ns(
    previous_along: float, previous_ns: int, along: float, now_ns: int, trigger: float
) -> int:
    """When the centre reached the line, by linear interpolation between two observations."""
    if along <= previous_along:
        return now_ns
    share = (trigger - previous_along) / (along - previous_along)
    return previous_ns + round(min(max(share, 0.0), 1.0) * (now_ns - previous_ns))
