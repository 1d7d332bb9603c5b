"""From decisions to valve pulses without a broker or a PLC: geometry, timing, refusals, overlaps."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from ejector_bridge.geometry import EjectorGeometry, GeometryError, ValveBar, load_geometry
from ejector_bridge.planning import Pulse, Result, plan_ejections
from ejector_bridge.scheduler import PulseScheduler
from sortline.labels import MATERIALS
from sortline.messages import DecisionMessage

NOW = 1_800_000_000 * 10**9
BAR = ValveBar(id="bar-1", bins=("plastic",), distance_m=1.0, valves=10, first_coil=100, pulse_ms=20)
GEOMETRY = EjectorGeometry(belt_speed_mps=2.0, bars=(BAR,))


def decision(bin_name: str = "plastic", belt_x: float | None = 0.55, captured_ago_ms: float = 0.0, **extra):
    captured = NOW - round(captured_ago_ms * 1e6)
    return DecisionMessage(
        frame_id="f-1", line_id="l", camera_id="c", seq=1, bin=bin_name, confidence=0.99, p_organic=0.01,
        material=bin_name, material_probs=dict.fromkeys(MATERIALS, 0.0), model_version="v", belt_x=belt_x,
        captured_at="x", captured_at_ns=captured, decided_at="x", latency_ms=1.0, **extra,
    )  # fmt: skip


def test_a_pulse_is_centred_on_the_items_arrival_and_starts_early_by_the_valve_delay() -> None:
    bar = BAR.model_copy(update={"valve_delay_ms": 5.0})
    (plan,) = plan_ejections(decision(), EjectorGeometry(belt_speed_mps=2.0, bars=(bar,)), NOW, 0)
    (pulse,) = plan.pulses
    assert plan.result is Result.SCHEDULED and plan.due_ns == NOW + 500_000_000  # 1 m at 2 m/s
    assert pulse.on_ns == plan.due_ns - 10_000_000 - 5_000_000 and pulse.off_ns == pulse.on_ns + 20_000_000
    assert (pulse.valve, pulse.coil) == (5, 105)


@pytest.mark.parametrize(
    ("span", "valves"), [((0.0, 0.05), [0]), ((0.95, 1.0), [9]), ((0.31, 0.52), [3, 4, 5]), ((1.0, 1.0), [9])]
)
def test_every_valve_under_the_item_fires(span, valves) -> None:
    (plan,) = plan_ejections(decision(belt_x=sum(span) / 2, belt_span=span), GEOMETRY, NOW, 0)
    assert [p.valve for p in plan.pulses] == valves


@pytest.mark.parametrize(
    ("item", "result"),
    [
        (decision(captured_ago_ms=495), Result.LATE),  # its pulse should have started 5 ms ago
        (decision(belt_x=None), Result.NO_POSITION),
        (decision(bin_name="glass"), Result.NOT_EJECTED),
    ],
)
def test_decisions_that_cannot_or_must_not_fire_say_why(item, result) -> None:
    (plan,) = plan_ejections(item, GEOMETRY, NOW, min_lead_ns=2_000_000)
    assert plan.result is result and plan.pulses == ()


def test_a_bar_covering_part_of_the_belt_lets_items_beside_it_pass() -> None:
    half = BAR.model_copy(update={"span": (0.5, 1.0)})
    (plan,) = plan_ejections(decision(belt_x=0.2), EjectorGeometry(belt_speed_mps=2.0, bars=(half,)), NOW, 0)
    assert plan.result is Result.OUTSIDE_BAR


def test_each_bar_that_ejects_the_bin_plans_at_its_own_distance() -> None:
    far = ValveBar(id="bar-2", bins=("plastic", "metal"), distance_m=2.0, valves=4, first_coil=0)
    plans = plan_ejections(decision(), EjectorGeometry(belt_speed_mps=2.0, bars=(BAR, far)), NOW, 0)
    assert [(p.bar, p.due_ns - NOW) for p in plans] == [("bar-1", 500_000_000), ("bar-2", 1_000_000_000)]


def test_a_bar_for_the_hazard_bin_ejects_batteries_and_lets_recyclables_pass() -> None:
    hazard_bar = ValveBar(id="hazard", bins=("hazard",), distance_m=0.5, valves=4, first_coil=200)
    geometry = EjectorGeometry(belt_speed_mps=2.0, bars=(BAR, hazard_bar))
    battery = decision("hazard", p_hazard=0.99)
    assert [p.bar for p in plan_ejections(battery, geometry, NOW, 0)] == ["hazard"]
    assert "hazard" not in [p.bar for p in plan_ejections(decision("plastic"), geometry, NOW, 0)]


@pytest.mark.parametrize(
    ("geometry", "message"),
    [
        ({"belt_speed_mps": 2, "bars": [{**BAR.model_dump(), "bins": ["compost"]}]}, "unknown bins"),
        ({"belt_speed_mps": 2, "bars": [{**BAR.model_dump(), "span": [0.6, 0.4]}]}, "left edge"),
        ({"belt_speed_mps": 2, "bars": [BAR.model_dump(), {**BAR.model_dump(), "id": "b2"}]}, "coil 100"),
        ({"belt_speed_mps": 0, "bars": [BAR.model_dump()]}, "belt_speed_mps"),
        ({"belt_speed_mps": 2, "bars": []}, "bars"),
    ],
)
def test_a_geometry_file_that_cannot_work_is_refused_with_the_reason(tmp_path, geometry, message) -> None:
    path = tmp_path / "line.json"
    path.write_text(json.dumps(geometry))
    with pytest.raises(GeometryError, match=message):
        load_geometry(path)


def test_a_toml_geometry_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "line.toml"
    path.write_text(
        'belt_speed_mps = 2.5\n[[bars]]\nid = "bar-1"\nbins = ["plastic"]\ndistance_m = 1.2\nvalves = 32\n'
    )
    assert load_geometry(path).bars[0].valves == 32


class RecordingOutput:
    def __init__(self) -> None:
        self.writes: list[tuple[int, int, bool]] = []
        self.closed = threading.Event()

    def write(self, coil: int, on: bool, pulse) -> None:
        self.writes.append((time.time_ns(), coil, on))

    def close(self) -> None:
        self.closed.set()


def pulse(coil: int, on_in_ms: float, length_ms: float) -> Pulse:
    on = time.time_ns() + round(on_in_ms * 1e6)
    return Pulse("bar-1", coil, coil, on, on + round(length_ms * 1e6), f"f-{coil}-{on_in_ms}", None)


def test_overlapping_pulses_on_one_valve_keep_it_open_until_the_last_ends() -> None:
    output = RecordingOutput()
    scheduler = PulseScheduler(output, lambda *_: None)
    scheduler.schedule([pulse(7, 60, 40), pulse(7, 80, 40), pulse(3, 30, 10)])
    time.sleep(0.3)
    scheduler.close(drain_s=1)
    assert [(coil, on) for _, coil, on in output.writes] == [(3, True), (3, False), (7, True), (7, False)]
    on_at, off_at = (at for at, coil, _ in output.writes if coil == 7)
    assert (off_at - on_at) / 1e6 == pytest.approx(60, abs=8)  # 60..120 ms: one opening, not two
    assert output.closed.is_set()


def test_an_earlier_pulse_scheduled_later_still_fires_first() -> None:
    output = RecordingOutput()
    scheduler = PulseScheduler(output, lambda *_: None)
    scheduler.schedule([pulse(1, 200, 10)])
    scheduler.schedule([pulse(2, 50, 10)])
    time.sleep(0.35)
    scheduler.close(drain_s=1)
    assert [coil for _, coil, on in output.writes if on] == [2, 1]


def test_closing_fires_what_is_due_soon_and_closes_every_open_valve() -> None:
    output = RecordingOutput()
    scheduler = PulseScheduler(output, lambda *_: None)
    scheduler.schedule([pulse(4, 20, 5_000)])  # open for 5 s
    time.sleep(0.1)
    scheduler.close(drain_s=0.1)
    assert [(coil, on) for _, coil, on in output.writes] == [(4, True), (4, False)]
