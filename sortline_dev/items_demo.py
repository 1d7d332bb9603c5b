"""``sortline-demo`` in items mode: the committed belt clip through a camera agent in items mode and a
worker, each item printed as it is decided (where, when, what), then the count per bin, checked
against the clip's truth."""

from __future__ import annotations

import statistics
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from sortline.belt import ClipGeometry, Observed, TruthItem, clip_geometry_path, match, read_truth
from sortline.connection import TlsFiles
from sortline.labels import BINS, expected_bin
from sortline.messages import DecisionMessage
from sortline.readable import decision_confidence_text, reason_text
from sortline.topology import delete_line
from sortline_dev.broker import connect
from sortline_dev.processes import AgentProcess, WorkerProcess
from sortline_dev.taps import Tap, decisions_tap

if TYPE_CHECKING:
    from sortline_dev.demo import DemoSettings

REPO = Path(__file__).resolve().parent.parent
console = Console(highlight=False, soft_wrap=True)
#: The first frames build the empty belt's model: items crossing then are not looked for.
WARM_UP_FRAMES = 15


def run_items_demo(settings: DemoSettings, url: str, tls: TlsFiles) -> int:
    video = settings.source or REPO / "samples" / "belt" / "demo.mp4"
    geometry = ClipGeometry.model_validate_json(clip_geometry_path(video).read_text())
    truth = [t for t in read_truth(video.with_suffix(".truth.jsonl")) if t.seq >= WARM_UP_FRAMES]
    line = f"demo-{uuid.uuid4().hex[:6]}"
    roi = f"{geometry.roi.x},{geometry.roi.y},{geometry.roi.w},{geometry.roi.h}"
    flags = ["--mode", "items", "--roi", roi, "--belt-direction", geometry.direction.value]
    site = video.parent / "site.toml"
    flags += ["--site", str(site)] if site.exists() else []
    worker = WorkerProcess(url, line, settings.model, tls=tls)
    agent = AgentProcess(url, line, video, *flags, camera_id="demo-cam", tls=tls)
    seconds = geometry.frames / geometry.fps
    console.print(f"[bold]Sortline demo[/bold], items mode: line [cyan]{line}[/cyan], {video.name} "
                  f"({seconds:.0f} s at {geometry.fps:.0f} fps, {len(truth)} items)")  # fmt: skip
    with decisions_tap(url, line, tls) as tap, worker:
        worker.wait_ready(timeout=120)
        with agent:
            decisions = follow(tap, agent, truth)
            agent_rc = agent.wait(timeout=30)
        worker_rc = worker.stop()
    connection = connect(url, tls)
    delete_line(connection.channel(), line)
    connection.close()
    summarise(decisions, truth)
    return 0 if decisions and agent_rc == 0 and worker_rc == 0 else 1


def follow(tap: Tap, agent: AgentProcess, truth: list[TruthItem]) -> list[DecisionMessage]:
    """Print each decision as it arrives, until the agent has played the clip and all is decided."""
    decisions: list[DecisionMessage] = []
    quiet = 0
    while agent.alive or quiet < 10:
        before = len(tap.received)
        tap.poll(0.2)
        quiet = 0 if len(tap.received) > before or agent.alive else quiet + 1
        for received in tap.received[before:]:
            decisions.append(received.decision())
            print_item(len(decisions), decisions[-1], truth)
    return decisions


def label_near(decision: DecisionMessage, truth: list[TruthItem]) -> str | None:
    """The truth's label of the item this decision is about (matched by crossing frame and belt_x)."""
    pairs = match(truth, [Observed(decision.seq, decision.belt_x or 0.0)])
    return truth[pairs[0][0]].label if pairs else None


def print_item(index: int, d: DecisionMessage, truth: list[TruthItem]) -> None:
    label = label_near(d, truth)
    want = expected_bin(label) if label else None
    mark = "" if want is None else ("[green]✓[/green]" if d.bin == want else f"[red]✗ {label}[/red]")
    eject = f"eject +{(d.eject_at_ns - d.captured_at_ns) / 1e9:.2f} s" if d.eject_at_ns else ""
    where = f"frame {d.seq:4d}  x {d.belt_x:.2f}  {d.views} views"
    confidence = decision_confidence_text(d)  # 0.9994, never 1.00, and below the threshold it missed
    console.print(f"{index:3d}  {d.item_id:<22} {where}  → [bold]{d.bin:<9}[/bold] {confidence:>8}  "
                  f"{d.latency_ms:6.1f} ms  {eject}  {mark}  {reason_text(d)}")  # fmt: skip


def summarise(decisions: list[DecisionMessage], truth: list[TruthItem]) -> None:
    counts = Counter(d.bin for d in decisions)
    table = Table(title="Items per bin")
    table.add_column("bin")
    table.add_column("items", justify="right")
    for name in BINS:
        table.add_row(name, str(counts.get(name, 0)))
    console.print(table)
    labelled = [(d.bin, label) for d in decisions if (label := label_near(d, truth))]
    right = sum(got == expected_bin(label) for got, label in labelled)
    latencies = sorted(d.latency_ms for d in decisions) or [0.0]
    p50, worst = statistics.median(latencies), latencies[-1]
    model = decisions[0].model_version if decisions else "?"
    console.print(f"{len(decisions)} items decided, {len(truth)} in the clip's truth; crossing-to-decision "
                  f"p50 {p50:.1f} ms, max {worst:.1f} ms; model {model}")  # fmt: skip
    if labelled:
        console.print(
            f"bins matching the items' labels: {right}/{len(labelled)} ({right / len(labelled):.0%})"
        )
