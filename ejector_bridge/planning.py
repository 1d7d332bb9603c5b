"""From a decision to the valve pulses that eject its item, or the reason none will.

Pure arithmetic, so it is tested without a broker or a PLC. An item crossing the camera's trigger
line at ``captured_at_ns`` reaches a bar ``distance / belt speed`` later; its pulse is centred on
that instant and starts ``valve_delay`` early, because a valve opens some milliseconds after its
coil is set. A pulse that would have to start before ``now + min_lead`` is refused as late: firing
it would blow air at whatever item is under the valve instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ejector_bridge.geometry import EjectorGeometry, ValveBar
from sortline.messages import DecisionMessage


class Result(StrEnum):
    """What became of one decision at one bar (``sortline_ejections_total{result}``)."""

    SCHEDULED = "scheduled"  # its pulses wait for their time (each write is counted when made)
    LATE = "late"  # arrived after its pulse should have started: never fired
    NO_POSITION = "no-position"  # the decision says nothing of where across the belt the item is
    OUTSIDE_BAR = "outside-bar"  # it passes beside the bar
    NOT_EJECTED = "not-ejected"  # no bar ejects its bin (e.g. residual, which stays on the belt)
    DUPLICATE = "duplicate"  # the same frame decided twice (two workers): fired once
    INVALID = "invalid"  # not a decision message
    OUTPUT_ERROR = "output-error"  # the PLC refused or did not answer the write


@dataclass(frozen=True, slots=True)
class Pulse:
    """One valve open from ``on_ns`` to ``off_ns`` (epoch nanoseconds) for one item."""

    bar: str
    valve: int
    coil: int
    on_ns: int
    off_ns: int
    frame_id: str
    item_id: str | None


@dataclass(frozen=True, slots=True)
class Plan:
    """A decision at one bar: its pulses, or why there are none."""

    bar: str | None
    result: Result
    pulses: tuple[Pulse, ...] = ()
    due_ns: int | None = None  # when the item's centre passes the bar


def plan_ejections(
    decision: DecisionMessage, geometry: EjectorGeometry, now_ns: int, min_lead_ns: int
) -> list[Plan]:
    """One plan per bar that ejects the decision's bin; ``NOT_EJECTED`` if none does."""
    bars = [bar for bar in geometry.bars if decision.bin in bar.bins]
    if not bars:
        return [Plan(None, Result.NOT_EJECTED)]
    return [plan_at(decision, bar, geometry.travel_ns(bar), now_ns, min_lead_ns) for bar in bars]


def plan_at(decision: DecisionMessage, bar: ValveBar, travel_ns: int, now_ns: int, min_lead_ns: int) -> Plan:
    if decision.belt_x is None:
        return Plan(bar.id, Result.NO_POSITION)
    left, right = decision.belt_span or (decision.belt_x, decision.belt_x)
    valves = bar.valves_under(left, right)
    if not valves:
        return Plan(bar.id, Result.OUTSIDE_BAR)
    due_ns = decision.captured_at_ns + travel_ns
    pulse_ns = round(bar.pulse_ms * 1e6)
    on_ns = due_ns - pulse_ns // 2 - round(bar.valve_delay_ms * 1e6)
    if on_ns < now_ns + min_lead_ns:
        return Plan(bar.id, Result.LATE, due_ns=due_ns)
    off_ns = on_ns + pulse_ns
    item = decision.frame_id, decision.item_id
    pulses = tuple(Pulse(bar.id, valve, bar.first_coil + valve, on_ns, off_ns, *item) for valve in valves)
    return Plan(bar.id, Result.SCHEDULED, pulses, due_ns)
