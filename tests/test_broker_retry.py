"""A broker that cannot be reached: one line per attempt, naming it (password hidden), the next
attempt's time and, once, what to check; pika's own lines and tracebacks only at debug level."""

from __future__ import annotations

import logging
import re
import socket
import ssl
import time
from pathlib import Path

import pika
import pytest

from sortline.broker_retry import BrokerRetry, failure
from sortline_dev.processes import AgentProcess, ServiceProcess, WorkerProcess

NOWHERE = "amqp://guest:s3cret@127.0.0.1:1/%2F"  # nothing listens on port 1
SHOWN = "amqp://guest:***@127.0.0.1:1/%2F"
ATTEMPT = re.compile(
    r"broker at amqp://guest:\*\*\*@127\.0\.0\.1:1/%2F unreachable \(connection refused\); "
    r"retrying in \d+\.\d s \(\d\d:\d\d:\d\d\)"
)


def refused_connection() -> Exception:
    try:
        pika.BlockingConnection(pika.URLParameters(NOWHERE))
    except Exception as error:  # what pika raises, wrapped as it wraps it
        return error
    raise AssertionError("something listens on port 1")


def test_each_attempt_is_one_line_and_the_second_says_what_to_check(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.retry")
    retry = BrokerRetry(NOWHERE, log, max_retry_seconds=1.0)
    error = refused_connection()
    with caplog.at_level(logging.WARNING, logger="test.retry"):
        delays = [retry.failed(error) for _ in range(4)]
        retry.connected()
        retry.failed(error)
    lines = [record.getMessage() for record in caplog.records if record.name == "test.retry"]
    assert all(0.0 <= delay <= 1.0 for delay in delays)
    assert all(ATTEMPT.match(line) for line in lines[:4]), lines
    assert ["check" in line for line in lines[:4]] == [False, True, False, False]
    assert lines[1].endswith("; check that RabbitMQ runs at 127.0.0.1:1 (nothing listens there now)")
    assert lines[4].startswith(f"lost the broker at {SHOWN} (connection refused); reconnecting in ")
    assert "s3cret" not in caplog.text


def why(error: BaseException) -> str:
    return failure(error, NOWHERE)[0]


def test_failures_are_named_in_words_with_where_to_look() -> None:
    assert failure(socket.gaierror(-2, "Name or service not known"), "amqps://u:p@broker.plant/site") == (
        "host name not found: Name or service not known",
        "that broker.plant resolves here (DNS, /etc/hosts)",
    )
    assert why(pika.exceptions.StreamLostError("Transport indicated EOF")) == "connection dropped"
    closed = pika.exceptions.ConnectionClosedByBroker(
        320, "CONNECTION_FORCED - broker forced connection closure"
    )
    assert why(pika.exceptions.AMQPConnectionError(closed)) == (
        "closed by the broker: CONNECTION_FORCED - broker forced connection closure"
    )
    certificate, check = failure(
        ssl.SSLCertVerificationError(1, "certificate verify failed"), "amqps://broker/"
    )
    assert certificate.startswith("certificate verify failed") and check.startswith("--tls-ca-file")
    assert "5671" in failure(TimeoutError(), "amqps://broker/")[1]  # the TLS port when the URL names none


def _lines_of(process: ServiceProcess) -> list[str]:
    return [line for line in process.output().splitlines() if line.strip()]


def test_no_process_floods_its_log_while_the_broker_is_away(
    tiny_model_dir: Path, sample_images: list[Path]
) -> None:
    """Worker, camera agent and ejector bridge, as an operator starts them against a wrong port."""
    fast = ("--max-retry-seconds", "0.5")
    processes = [
        WorkerProcess(NOWHERE, "line-1", tiny_model_dir, *fast, log_level="INFO"),
        AgentProcess(NOWHERE, "line-1", sample_images[0].parent, *fast, log_level="INFO"),
        ServiceProcess("ejector_bridge.cli", ["--output", "dry-run", "--dry-run-csv", "/dev/null", *fast],
                       NOWHERE, log_level="INFO"),
    ]  # fmt: skip
    for process in processes:
        process.start()
    deadline = time.monotonic() + 60
    while any(sum(bool(ATTEMPT.search(line)) for line in _lines_of(p)) < 4 for p in processes):
        assert time.monotonic() < deadline, [p.output()[-1000:] for p in processes]
        time.sleep(0.3)
    for process in processes:
        process.stop()
        lines = _lines_of(process)
        attempts = [line for line in lines if " WARNING " in line]
        assert attempts and all(ATTEMPT.search(line) for line in attempts), process.output()
        assert sum("; check " in line for line in attempts) == 1, process.output()
        assert not [line for line in lines if " ERROR " in line or "Traceback" in line or " pika" in line]
        assert "s3cret" not in process.output()


def test_at_debug_level_pika_says_its_own_part(tiny_model_dir: Path) -> None:
    worker = WorkerProcess(NOWHERE, "line-1", tiny_model_dir, "--max-retry-seconds", "0.5", log_level="DEBUG")
    with worker:
        deadline = time.monotonic() + 60
        while not ATTEMPT.search(worker.output()):
            assert time.monotonic() < deadline, worker.output()[-2000:]
            time.sleep(0.3)
    assert re.search(r" ERROR pika\.", worker.output())


@pytest.mark.broker
def test_a_wrong_password_is_one_clear_line(amqp_url: str, tiny_model_dir: Path) -> None:
    bad = amqp_url.replace("guest:guest", "guest:wrong-s3cret")
    for process in (
        WorkerProcess(bad, "line-1", tiny_model_dir, log_level="INFO"),
        ServiceProcess("ejector_bridge.cli", ["--output", "dry-run", "--dry-run-csv", "/dev/null"], bad,
                       log_level="INFO"),
    ):  # fmt: skip
        with process:
            assert process.process.wait(60) == 2
        lines = _lines_of(process)
        assert "refused us" in lines[-1] and "guest:***@" in lines[-1], lines
        assert not [
            line for line in lines[:-1] if "WARNING" in line or "ERROR" in line or "Traceback" in line
        ]
        assert "wrong-s3cret" not in process.output()
