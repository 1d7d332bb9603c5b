"""``make demo``: a worker and a camera agent on the committed sample, each decision printed, then a summary.

It runs the real processes (``classifier-worker`` and ``camera-agent`` as subprocesses) against a
real RabbitMQ, on a line of its own, and watches ``sortline.decisions`` like any downstream tool.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pika
from pydantic import Field
from rich.console import Console
from rich.table import Table

from sortline.labels import BINS, expected_bin
from sortline.messages import DecisionMessage
from sortline.settings import SortlineSettings, parse_cli
from sortline.topology import DECISIONS_EXCHANGE, declare_exchanges, frames_queue
from sortline_dev.broker import BrokerUnavailable, provide_broker

REPO = Path(__file__).resolve().parent.parent
console = Console(highlight=False, soft_wrap=True)


class DemoSettings(SortlineSettings):
    """sortline-demo: run a worker and a camera agent on a folder of images and show the decisions."""

    source: Path = Field(
        REPO / "samples" / "demo", description="Folder of images to replay (DIR/<label>/*.jpg)."
    )
    model: Path | None = Field(None, description="Model directory; default: the committed default model.")
    fps: float = Field(
        0.0, ge=0.0, le=1000.0, description="Camera frame rate; 0 = as fast as the broker takes them."
    )
    timeout_s: float = Field(
        120.0, gt=0.0, le=3600.0, description="Give up waiting for decisions after this long."
    )


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_cli(DemoSettings, argv, prog="sortline-demo")
    try:
        with provide_broker() as url:
            return run_demo(settings, url)
    except BrokerUnavailable as error:
        console.print(f"[red]sortline-demo:[/red] {error}")
        return 2


def run_demo(settings: DemoSettings, url: str) -> int:
    line = f"demo-{uuid.uuid4().hex[:6]}"
    expected = len([p for p in settings.source.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"}])
    env = {**os.environ, "AMQP_URL": url}
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    declare_exchanges(channel)
    tap = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(tap, DECISIONS_EXCHANGE, f"decisions.{line}.#")
    worker = start_worker(settings, line, env)
    try:
        wait_for_consumer(connection, line, worker)
        console.print(
            f"[bold]Sortline demo[/bold]: line [cyan]{line}[/cyan], {expected} images from {settings.source}"
        )
        agent = subprocess.Popen(agent_command(settings, line), env=env)
        decisions = watch(connection, channel, tap, expected, settings.timeout_s)
        agent_rc = agent.wait(timeout=30)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker_rc = worker.wait(timeout=30)
        channel.queue_delete(frames_queue(line))
        connection.close()
    summarise(decisions, expected)
    return 0 if len(decisions) == expected and agent_rc == 0 and worker_rc == 0 else 1


def start_worker(settings: DemoSettings, line: str, env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "classifier_worker.cli", "--line-id", line, "--metrics-port", "0",
               "--log-level", "WARNING"]  # fmt: skip
    if settings.model:
        command += ["--model", str(settings.model)]
    return subprocess.Popen(command, env=env)


def agent_command(settings: DemoSettings, line: str) -> list[str]:
    return [sys.executable, "-m", "camera_agent.cli", "--source", str(settings.source), "--line-id", line,
            "--camera-id", "demo-cam", "--fps", str(settings.fps), "--metrics-port", "0",
            "--log-level", "WARNING"]  # fmt: skip


def wait_for_consumer(connection, line: str, worker: subprocess.Popen, timeout: float = 60.0) -> None:
    """The worker declares the line's queue and starts consuming once its model is warm."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"sortline-demo: the worker exited with code {worker.returncode}")
        probe = connection.channel()  # a passive declare of a missing queue closes its channel
        try:
            if probe.queue_declare(frames_queue(line), passive=True).method.consumer_count:
                probe.close()
                return
            probe.close()
        except pika.exceptions.ChannelClosedByBroker:
            pass
        time.sleep(0.2)
    raise SystemExit("sortline-demo: the worker did not start consuming in time")


def watch(connection, channel, tap: str, expected: int, timeout: float) -> list[DecisionMessage]:
    decisions: list[DecisionMessage] = []
    deadline = time.monotonic() + timeout
    for _method, _properties, body in channel.consume(tap, auto_ack=True, inactivity_timeout=1.0):
        if body is not None:
            decision = DecisionMessage.from_json(body)
            decisions.append(decision)
            print_decision(len(decisions), decision)
        if len(decisions) >= expected or time.monotonic() > deadline:
            break
    channel.cancel()
    return decisions


def label_of(source: str | None) -> str | None:
    """The sample's folder name is its label (DIR/<label>/file.jpg)."""
    return source.split("/", 1)[0] if source and "/" in source else None


def print_decision(index: int, d: DecisionMessage) -> None:
    label = label_of(d.source)
    want = expected_bin(label) if label else None
    mark = (
        "" if want is None else (" [green]✓[/green]" if d.bin == want else f" [red]✗ expected {want}[/red]")
    )
    why = f"({d.residual_reason}: {d.material})" if d.residual_reason else ""
    console.print(f"{index:4d}  {d.source or d.frame_id:<42} → [bold]{d.bin:<9}[/bold] {why:<28}"
                  f"{d.confidence:5.2f}  {d.latency_ms:7.1f} ms{mark}")  # fmt: skip


def line_span_seconds(decisions: list[DecisionMessage]) -> float:
    """From the first frame's capture to the last decision: the line's throughput window."""
    first_capture = min(d.captured_at_ns for d in decisions)
    last_decision = max(datetime.fromisoformat(d.decided_at).timestamp() for d in decisions)
    return max(last_decision - first_capture / 1e9, 1e-9)


def summarise(decisions: list[DecisionMessage], expected: int) -> None:
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


if __name__ == "__main__":
    sys.exit(main())
