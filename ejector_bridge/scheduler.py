"""Valve pulses written to the PLC at their time, by one thread that does nothing else.

Each pulse is two events, coil on and coil off. Pulses of two items may overlap on one valve
(items side by side, or one just behind another): a count per coil keeps the valve open until the
last of them ends, so one item's "off" never cuts the other's air. The thread sleeps on a
condition until the earliest event, so a pulse scheduled for sooner than the one it waits for
wakes it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from ejector_bridge.planning import Pulse

log = logging.getLogger(__name__)


class CoilOutput(Protocol):
    """Where coil states go: a PLC over Modbus/TCP, or a CSV file for a dry run."""

    def write(self, coil: int, on: bool, pulse: Pulse) -> None: ...

    def close(self) -> None: ...


@dataclass(order=True, slots=True)
class _Event:
    at_ns: int
    order: int  # ties keep the order events were scheduled in
    on: bool = field(compare=False)
    pulse: Pulse = field(compare=False)


class PulseScheduler:
    """Runs ``output.write`` for every scheduled pulse's start and end, on its own thread.

    ``on_written(pulse, on, late_ns, error)`` reports each write: how late it came against its
    planned time, and the exception if the output refused it (the count per coil is kept either
    way, so the next write puts the valve right).
    """

    def __init__(self, output: CoilOutput, on_written: Callable[[Pulse, bool, int, Exception | None], None]):
        self._output = output
        self._on_written = on_written
        self._events: list[_Event] = []
        self._order = itertools.count()
        self._open: dict[int, int] = {}  # coil -> pulses holding it open
        self._wake = threading.Condition()
        self._accepting = True
        self._thread = threading.Thread(target=self._run, name="pulses", daemon=True)
        self._thread.start()

    def schedule(self, pulses: Iterable[Pulse]) -> None:
        with self._wake:
            for pulse in pulses:
                heapq.heappush(self._events, _Event(pulse.on_ns, next(self._order), True, pulse))
                heapq.heappush(self._events, _Event(pulse.off_ns, next(self._order), False, pulse))
            self._wake.notify()

    def pending(self) -> int:
        """Events not yet written (two per pulse)."""
        with self._wake:
            return len(self._events)

    def close(self, drain_s: float) -> None:
        """Fire what is due within ``drain_s``, then close every valve and the output."""
        deadline = time.monotonic() + drain_s
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._wake:
            self._accepting = False
            left = len(self._events)
            self._events.clear()
            self._wake.notify()
        self._thread.join(5)
        if left:
            log.warning("stopping with %d pulse events not yet due; closing every valve", left)
        for coil in [coil for coil, holders in self._open.items() if holders]:
            self._write(coil, False, None)
        self._output.close()

    def _run(self) -> None:
        while True:
            with self._wake:
                due = self._next_due()
                if due is None:
                    return
            self._execute(due)

    def _next_due(self) -> list[_Event] | None:
        """Wait (holding the condition) until events are due; None once closed."""
        while self._accepting:
            now = time.time_ns()
            if self._events and self._events[0].at_ns <= now:
                due = []
                while self._events and self._events[0].at_ns <= now:
                    due.append(heapq.heappop(self._events))
                return due
            timeout = (self._events[0].at_ns - now) / 1e9 if self._events else None
            self._wake.wait(timeout)
        return None

    def _execute(self, events: list[_Event]) -> None:
        for event in events:
            coil = event.pulse.coil
            holders = self._open.get(coil, 0) + (1 if event.on else -1)
            self._open[coil] = max(0, holders)
            if (event.on and holders == 1) or (not event.on and holders == 0):
                late_ns = time.time_ns() - event.at_ns
                error = self._write(coil, event.on, event.pulse)
                self._on_written(event.pulse, event.on, late_ns, error)

    def _write(self, coil: int, on: bool, pulse: Pulse | None) -> Exception | None:
        try:
            self._output.write(coil, on, pulse)
        except Exception as error:  # a PLC that does not answer must not stop the other valves
            log.warning("coil %d %s failed: %r", coil, "on" if on else "off", error)
            return error
        return None
