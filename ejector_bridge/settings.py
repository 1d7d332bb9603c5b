"""Ejector bridge configuration: flags override SORTLINE_* environment variables override defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ejector_bridge.geometry import EjectorGeometry, Fraction, ValveBar, load_geometry
from sortline.labels import BINS
from sortline.messages import Identifier
from sortline.settings import METRICS_PORT_HELP, SortlineSettings


class BridgeSettings(SortlineSettings):
    """ejector-bridge: turn a line's decisions into valve pulses on its PLC, each at its time.

    One valve bar from flags (--belt-speed-mps, --bar-distance-m, --valves, --bins ...) or any
    number of bars from --geometry FILE (TOML or JSON: belt_speed_mps and a list of bars).
    """

    line_id: Identifier = Field("line-1", description="Line whose decisions this bridge acts on.")
    output: Literal["modbus", "opcua", "dry-run"] = Field(
        "modbus",
        description="modbus: coils of a PLC over Modbus/TCP; opcua: boolean nodes on an OPC UA server;"
        " dry-run: the schedule to --dry-run-csv.",
    )
    dry_run_csv: Path = Field(
        Path("ejections.csv"), description="Where --output dry-run writes the schedule."
    )
    modbus_host: str = Field("127.0.0.1", min_length=1, max_length=253, description="The PLC's address.")
    modbus_port: int = Field(502, ge=1, le=65535, description="The PLC's Modbus/TCP port.")
    modbus_device_id: int = Field(
        1, ge=0, le=255, description="Modbus device (unit) id of the valve outputs."
    )
    modbus_timeout_s: float = Field(0.5, gt=0.0, le=10.0, description="A write not answered by then fails.")
    opcua_url: str = Field(
        "opc.tcp://127.0.0.1:4840/",
        pattern=r"^opc\.tcp://\S+$",
        max_length=2048,
        description="--output opcua: the PLC's OPC UA endpoint (opc.tcp://[user:password@]host:port/path).",
    )
    opcua_node: str = Field(
        "ns={ns};s=Valve{coil}",
        pattern=r"\{coil\}",
        max_length=512,
        description="--output opcua: a valve's boolean node id; {coil} is its address (--first-coil +"
        " valve), {ns} the index of --opcua-namespace-uri.",
    )
    opcua_namespace_uri: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        description="--output opcua: the namespace URI that {ns} stands for, looked up on each connect.",
    )
    opcua_timeout_s: float = Field(
        0.5, gt=0.0, le=10.0, description="An OPC UA request not answered by then fails."
    )
    geometry: Path | None = Field(
        None, description="Geometry file (.toml or .json); overrides the bar flags."
    )
    belt_speed_mps: float = Field(2.0, gt=0.0, le=20.0, description="Belt speed, metres per second.")
    bar_distance_m: float = Field(
        1.0, gt=0.0, le=100.0, description="From the camera's trigger line to the valves, metres."
    )
    valves: int = Field(32, ge=1, le=1024, description="Valves across the bar (one coil each).")
    bins: list[Literal[BINS]] = Field(  # type: ignore[valid-type]
        ["cardboard", "glass", "metal", "paper", "plastic"],
        min_length=1,
        description="Bins whose items the bar ejects (e.g. --bins plastic,metal); others pass.",
    )
    bar_span: tuple[Fraction, Fraction] = Field(
        (0.0, 1.0),
        json_schema_extra={"metavar": "LEFT,RIGHT"},
        description="The part of the belt's width the bar covers, as 'left,right' in 0..1.",
    )
    first_coil: int = Field(0, ge=0, le=65535, description="Coil address of the leftmost valve.")
    pulse_ms: float = Field(20.0, ge=1.0, le=1000.0, description="How long a valve stays open per item.")
    valve_delay_ms: float = Field(
        0.0, ge=0.0, le=500.0, description="Coil-to-air delay of the valves; coils are set this much earlier."
    )
    min_lead_ms: float = Field(
        2.0,
        ge=0.0,
        le=1000.0,
        description="A pulse that would have to start sooner than this from now is refused as late.",
    )
    prefetch: int = Field(256, ge=1, le=10_000, description="Decisions the broker may hand over unacked.")
    metrics_port: int = Field(9103, ge=0, le=65535, description=METRICS_PORT_HELP)

    @model_validator(mode="after")
    def _geometry_loads(self) -> BridgeSettings:
        self.resolved_geometry()  # a bad file or bar is a clear error at start, not at the first item
        return self

    @model_validator(mode="after")
    def _opcua_namespace_named(self) -> BridgeSettings:
        if self.output == "opcua" and "{ns}" in self.opcua_node and self.opcua_namespace_uri is None:
            raise ValueError(
                f"--opcua-node {self.opcua_node!r} uses {{ns}}: give --opcua-namespace-uri (the PLC"
                " program's namespace), or write the index into --opcua-node (e.g. ns=2;s=Valve{coil})"
            )
        return self

    def resolved_geometry(self) -> EjectorGeometry:
        if self.geometry is not None:
            return load_geometry(self.geometry)
        bar = ValveBar(
            id="bar-1", bins=tuple(self.bins), distance_m=self.bar_distance_m, valves=self.valves,
            span=self.bar_span, first_coil=self.first_coil, pulse_ms=self.pulse_ms,
            valve_delay_ms=self.valve_delay_ms,
        )  # fmt: skip
        return EjectorGeometry(belt_speed_mps=self.belt_speed_mps, bars=(bar,))
