"""``sortline tail``: a line's decisions as readable rows or JSON, filtered by bin, residual and camera,
through a queue of its own, so that the ejector bridge's queue keeps every decision."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pika
import pytest

from sortline.labels import MATERIALS
from sortline.messages import DecisionMessage, ns_to_iso
from sortline.settings import parse_cli
from sortline.topology import decisions_queue, declare_line
from sortline_dev.broker import process_env
from sortline_dev.publishing import publish_decisions
from sortline_tools.tail import COLUMNS, Follower, TailSettings, decision_row

counter = itertools.count()


def decision(
    line_id: str, bin_name: str, camera_id: str = "cam-1", confidence: float = 0.97
) -> DecisionMessage:
    index = next(counter)
    residual = bin_name == "residual"
    now = time.time_ns()
    return DecisionMessage(
        frame_id=f"f{index}", line_id=line_id, camera_id=camera_id, seq=index, item_id=f"item-{index:06d}",
        bin=bin_name, confidence=confidence, p_organic=0.01, material="plastic" if residual else bin_name,
        material_probs=dict.fromkeys(MATERIALS, 0.0), model_version="v1",
        residual_reason="low-confidence" if residual else None,
        residual_threshold=0.9995 if residual else None,
        residual_detail=f"top material plastic {confidence:.6f} < 0.9995" if residual else None,
        captured_at=ns_to_iso(now - 12_300_000), captured_at_ns=now - 12_300_000, decided_at=ns_to_iso(now),
        latency_ms=12.3,
    )  # fmt: skip


def tail_settings(line_id: str, *flags: str) -> TailSettings:
    return parse_cli(TailSettings, ["--line-id", line_id, *flags], "sortline tail")


def test_the_broker_filters_bins_and_residual_joins_them() -> None:
    assert tail_settings("l1").binding_keys() == ["decisions.l1.#"]
    assert tail_settings("l1", "--residual", "--bins", "metal,plastic").binding_keys() == [
        "decisions.l1.metal", "decisions.l1.plastic", "decisions.l1.residual",
    ]  # fmt: skip


def test_a_row_says_when_where_what_how_sure_how_late_and_why() -> None:
    row = decision_row(decision("l1", "residual", confidence=0.999418))
    decided = datetime.now(UTC).astimezone().strftime("%H:%M")
    assert row.startswith(decided) and " cam-1 " in row and " item-" in row and " residual " in row
    assert " 0.9994 " in row and "1.00" not in row and " 12.3 ms " in row
    assert row.endswith("low-confidence: top material plastic 0.999418 < 0.9995")
    assert decision_row(decision("l1", "plastic")).endswith("12.3 ms")  # no reason to give
    assert COLUMNS.split() == ["decided", "camera", "item", "bin", "confidence", "latency", "why"]


def follow(
    settings: TailSettings, amqp_url: str, batch: list[DecisionMessage], wanted: int
) -> tuple[str, int]:
    """Run a tail on its own thread, publishing ``batch`` until it has shown ``wanted``; (output, sent)."""
    out, stop = io.StringIO(), threading.Event()
    follower = Follower(settings, out, stop)
    thread = threading.Thread(target=follower.run, daemon=True)
    thread.start()
    sent, deadline = 0, time.monotonic() + 60
    try:
        while follower.shown < wanted:  # the tail binds its queue some time after it starts
            assert time.monotonic() < deadline and thread.is_alive(), out.getvalue()
            publish_decisions(amqp_url, batch)
            sent += len(batch)
            time.sleep(0.3)
    finally:
        stop.set()
        thread.join(10)
    return out.getvalue(), sent


@pytest.mark.broker
def test_tail_shows_only_what_the_filters_let_through(amqp_url: str, line_id: str) -> None:
    settings = tail_settings(line_id, "--amqp-url", amqp_url, "--residual", "--cameras", "cam-1")
    batch = [decision(line_id, "plastic"), decision(line_id, "residual", confidence=0.999418),
             decision(line_id, "residual", camera_id="cam-2"), decision(line_id, "metal")]  # fmt: skip
    output, _ = follow(settings, amqp_url, batch, wanted=2)
    header, *rows = output.splitlines()
    assert header == COLUMNS and len(rows) >= 2
    assert all(" cam-1 " in row and " residual " in row and " 0.9994 " in row for row in rows), rows


@pytest.mark.broker
def test_json_rows_are_the_decisions_and_the_bridge_queue_keeps_them_all(amqp_url: str, line_id: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    declare_line(connection.channel(), line_id)  # the line's decisions queue, as its bridge reads it
    settings = tail_settings(line_id, "--amqp-url", amqp_url, "--json")
    batch = [decision(line_id, "glass"), decision(line_id, "residual")]
    output, sent = follow(settings, amqp_url, batch, wanted=4)
    shown = [DecisionMessage.from_json(line) for line in output.splitlines()]
    assert len(shown) >= 4 and {d.frame_id for d in shown} <= {d.frame_id for d in batch}
    waiting = connection.channel().queue_declare(decisions_queue(line_id), passive=True).method.message_count
    connection.close()
    assert waiting == sent, "a tail must never take a decision from the bridge's queue"


@pytest.mark.broker
def test_the_command_stops_after_count_decisions(amqp_url: str, line_id: str) -> None:
    command = [sys.executable, "-m", "sortline_tools", "tail", "--line-id", line_id, "--count", "3", "--json"]
    tail = subprocess.Popen(command, env=process_env(amqp_url), stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while tail.poll() is None:
            assert time.monotonic() < deadline, "sortline tail did not stop after --count"
            publish_decisions(amqp_url, [decision(line_id, "paper")])
            time.sleep(0.2)
        output = tail.stdout.read()
    finally:
        tail.kill()
    assert tail.returncode == 0
    assert [json.loads(line)["bin"] for line in output.splitlines()] == ["paper"] * 3


def test_a_refused_login_is_exit_2_without_the_password(amqp_url: str) -> None:
    bad = amqp_url.replace("guest:guest", "guest:wrong-s3cret")
    result = subprocess.run(
        [sys.executable, "-m", "sortline_tools", "tail", "--line-id", "l1"],
        env={**os.environ, "AMQP_URL": bad, "SORTLINE_AMQP_URL": bad}, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("sortline tail: broker at ") and "guest:***@" in result.stderr
    assert "wrong-s3cret" not in result.stderr + result.stdout
