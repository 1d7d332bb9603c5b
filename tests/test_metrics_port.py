"""The metrics port of every service: one in use is a one-line error and exit 2, 0 takes any free one;
no `*_created` series."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sortline_dev.metrics import scrape_port
from sortline_dev.processes import ServiceProcess, free_port

NOWHERE = "amqp://guest:guest@127.0.0.1:1/%2F"  # the port matters here, not the broker


def services(model: Path, images: Path) -> dict[str, tuple[str, list[str]]]:
    return {
        "classifier-worker": ("classifier_worker.cli", ["--model", str(model)]),
        "camera-agent": ("camera_agent.cli", ["--source", str(images)]),
        "ejector-bridge": ("ejector_bridge.cli", ["--output", "dry-run", "--dry-run-csv", "/dev/null"]),
    }


@pytest.fixture
def taken_port() -> Iterator[int]:
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("", port))
        holder.listen()
        yield port


@pytest.mark.parametrize("prog", ["classifier-worker", "camera-agent", "ejector-bridge"])
def test_a_port_in_use_is_one_line_and_exit_2(
    prog: str, taken_port: int, tiny_model_dir: Path, sample_images: list[Path]
) -> None:
    module, args = services(tiny_model_dir, sample_images[0].parent)[prog]
    process = ServiceProcess(module, args, NOWHERE, metrics_port=taken_port, log_level="WARNING").start()
    try:
        assert process.process.wait(90) == 2
    finally:
        process.stop()
    lines = [line for line in process.output().splitlines() if line.strip()]
    assert lines == [
        f"{prog}: cannot serve /metrics on port {taken_port}: Address already in use (another process "
        "there?); give each process on a host its own --metrics-port, or 0 for any free port"
    ]


@pytest.mark.parametrize("prog", ["classifier-worker", "camera-agent", "ejector-bridge"])
def test_port_0_serves_on_a_free_port_and_logs_it(
    prog: str, tiny_model_dir: Path, sample_images: list[Path]
) -> None:
    module, args = services(tiny_model_dir, sample_images[0].parent)[prog]
    with ServiceProcess(module, args, NOWHERE, metrics_port=0, log_level="INFO") as process:
        deadline = time.monotonic() + 90
        while not (
            found := re.search(r"serving /metrics, /healthz and /readyz on port (\d+)", process.output())
        ):
            process.check_alive()
            assert time.monotonic() < deadline, process.output()
            time.sleep(0.2)
        port = int(found.group(1))
        assert port != 0
        scraped = scrape_port(port)
        assert scraped.total("sortline_build_info") == 1
        assert not [s.name for s in scraped.samples if s.name.endswith("_created")]
        if prog == "classifier-worker":  # it creates its line's counters at 0
            assert (
                scraped.total("sortline_decisions_total") == 0 and "sortline_decisions_total" in scraped.text
            )
