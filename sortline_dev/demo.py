"""``make demo``: a worker and a camera agent on the committed sample, each decision printed, then a summary.

It runs the real processes (``classifier-worker`` and ``camera-agent`` as subprocesses) against a
real RabbitMQ, on a line of its own, and watches ``sortline.decisions`` like any downstream tool.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field
from rich.console import Console
from rich.table import Table

from sortline.connection import TlsFiles
from sortline.labels import BINS, expected_bin
from sortline.messages import DecisionMessage
from sortline.readable import decision_confidence_text, reason_text
from sortline.settings import SortlineSettings, parse_cli
from sortline.topology import delete_line
from sortline_dev.broker import BrokerUnavailable, connect, provide_broker
from sortline_dev.items_demo import run_items_demo
from sortline_dev.processes import AgentProcess, ProcessFailed, WorkerProcess
from sortline_dev.taps import Tap, decisions_tap

REPO = Path(__file__).resolve().parent.parent
console = Console(highlight=False, soft_wrap=True)


BELT_CLIP = REPO / "samples" / "belt" / "demo.mp4"
IMAGE_FOLDER = REPO / "samples" / "demo"


class DemoSettings(SortlineSettings):
    """sortline-demo: run a worker and a camera agent on a committed sample and show the decisions.

    items (the default): a belt clip, each item found, tracked and decided once, printed as it is
    decided, then the count per bin. frame: a folder of labelled photos, one decision per image.
    """

    mode: Literal["items", "frame"] = Field(
        "items", description="items: the belt clip samples/belt/demo.mp4; frame: the photos in samples/demo."
    )
    source: Path | None = Field(
        None, description="Clip (items) or folder DIR/<label>/*.jpg (frame) to replay; default: the sample."
    )
    model: Path | None = Field(None, description="Model directory; default: the committed default model.")
    fps: float = Field(
        0.0, ge=0.0, le=1000.0, description="frame: camera frame rate; 0 = as fast as the broker takes them."
    )
    timeout_s: float = Field(
        120.0, gt=0.0, le=3600.0, description="Give up waiting for decisions after this long."
    )


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_cli(DemoSettings, argv, prog="sortline-demo")
    tls = settings.tls_files()
    try:
        with provide_broker(settings.amqp_url.get_secret_value(), tls) as url:
            return run_demo(settings, url, tls)
    except BrokerUnavailable as error:
        console.print(f"[red]sortline-demo:[/red] {error}")
        return 2
    except ProcessFailed as error:
        console.print(f"[red]sortline-demo:[/red] {error}")
        return 1


def run_demo(settings: DemoSettings, url: str, tls: TlsFiles) -> int:
    if settings.mode == "items":
        return run_items_demo(settings, url, tls)
    return run_frames_demo(settings, url, tls)


def run_frames_demo(settings: DemoSettings, url: str, tls: TlsFiles) -> int:
    line = f"demo-{uuid.uuid4().hex[:6]}"
    source = settings.source or IMAGE_FOLDER
    expected = len([p for p in source.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"}])
    worker = WorkerProcess(url, line, settings.model, tls=tls)
    agent = AgentProcess(url, line, source, "--fps", str(settings.fps), camera_id="demo-cam", tls=tls)
    with decisions_tap(url, line, tls) as tap, worker:
        worker.wait_ready(timeout=120)  # the model is loaded and warm
        console.print(
            f"[bold]Sortline demo[/bold]: line [cyan]{line}[/cyan], {expected} images from {source}"
        )
        with agent:
            decisions = watch(tap, expected, settings.timeout_s)
            agent_rc = agent.wait(timeout=30)
        worker_rc = worker.stop()
    delete_line_queue(url, line, tls)
    summarise(decisions, expected, settings.fps)
    for name, process, code in (("camera-agent", agent, agent_rc), ("classifier-worker", worker, worker_rc)):
        if code != 0:
            console.print(f"[red]{name} exited with {code}:[/red]\n{process.output()[-2000:]}")
    return 0 if len(decisions) == expected and agent_rc == 0 and worker_rc == 0 else 1


def watch(tap: Tap, expected: int, timeout: float) -> list[DecisionMessage]:
    """Print each decision as it arrives, until ``expected`` arrived or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while len(tap.received) < expected and time.monotonic() < deadline:
        seen = len(tap.received)
        for index in range(seen, tap.poll(0.2)):
            print_decision(index + 1, tap.received[index].decision())
    return [received.decision() for received in tap.received]


def delete_line_queue(url: str, line: str, tls: TlsFiles) -> None:
    connection = connect(url, tls)
    try:
        delete_line(connection.channel(), line)
    finally:
        connection.close()


def label_of(source: str | None) -> str | None:
    """The sample's folder name is its label (DIR/<label>/file.jpg)."""
    return source.split("/", 1)[0] if source and "/" in source else None


def print_decision(index: int, d: DecisionMessage) -> None:
    label = label_of(d.source)
    want = expected_bin(label) if label else None
    mark = (
        "" if want is None else (" [green]✓[/green]" if d.bin == want else f" [red]✗ expected {want}[/red]")
    )
    confidence = decision_confidence_text(d)  # 0.9994, never 1.00, and below the threshold it missed
    console.print(f"{index:4d}  {d.source or d.frame_id:<42} → [bold]{d.bin:<9}[/bold] {confidence:>8}  "
                  f"{d.latency_ms:7.1f} ms  {reason_text(d)}{mark}")  # fmt: skip


def line_span_seconds(decisions: list[DecisionMessage]) -> float:
    """From the first frame's capture to the last decision: the line's throughput window."""
    first_capture = min(d.captured_at_ns for d in decisions)
    last_decision = max(datetime.fromisoformat(d.decided_at).timestamp() for d in decisions)
    return max(last_decision - first_capture / 1e9, 1e-9)


#: Why the frame demo's latency is long at its default --fps 0, said where the figure is printed.
QUEUED_AT_ONCE = (
    "at --fps 0 the camera publishes every photo at once, so most wait in the queue behind the others "
    "and their capture-to-decision latency is mostly that wait; --fps 10 shows a line's own latency"
)


def summarise(decisions: list[DecisionMessage], expected: int, fps: float) -> None:
    counts = Counter(d.bin for d in decisions)
    table = Table(title="Decisions per bin")
    table.add_column("bin")
    table.add_column("items", justify="right")
    for name in BINS:
        table.add_row(name, str(counts.get(name, 0)))
    console.print(table)
    latencies = sorted(d.latency_ms for d in decisions) or [0.0]
    scored = [
        (d.bin, expected_bin(lbl)) for d in decisions if (lbl := label_of(d.source)) and lbl != "recyclable"
    ]
    correct = sum(got == want for got, want in scored)
    elapsed = line_span_seconds(decisions) if decisions else float("nan")
    console.print(
        f"{len(decisions)}/{expected} frames decided in {elapsed:.2f} s (first capture to last decision): "
        f"[bold]{len(decisions) / elapsed:.1f} decisions/s[/bold]; capture-to-decision "
        f"p50 {statistics.median(latencies):.1f} ms, max {latencies[-1]:.1f} ms; "
        f"model {decisions[0].model_version if decisions else '?'}"
    )
    if scored:
        console.print(
            f"bins matching the sample's folder labels: {correct}/{len(scored)} ({correct / len(scored):.0%})"
        )
    if fps == 0:
        console.print(QUEUED_AT_ONCE)


if __name__ == "__main__":
    sys.exit(main())
