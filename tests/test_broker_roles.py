"""Least privilege on the real broker: each role does its job and is refused everything else.

A site is imported from the definitions deploy/ ships (``sortline.broker_definitions``) into a
vhost of its own; then every action below is attempted as the role's user with plain pika. An
allowed action must succeed (so a refusal is never a broken set-up), a refused one must close the
channel with ACCESS_REFUSED.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker

from sortline.broker_definitions import decisions_queue
from sortline.health import probe
from sortline.topology import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    DECISIONS_EXCHANGE,
    FRAMES_EXCHANGE,
    MODEL_EVENTS_EXCHANGE,
    REVIEW_EXCHANGE,
    declare_model_events_queue,
    frames_queue,
    review_queue,
)
from sortline_dev.broker import process_env
from sortline_dev.processes import AgentProcess, WorkerProcess
from tests.support.sites import Site, imported_site

pytestmark = pytest.mark.broker

Action = Callable[[BlockingChannel], object]


@pytest.fixture(scope="module")
def site(amqp_url: str) -> Iterator[Site]:
    with imported_site(amqp_url, ("line-1", "line-2")) as imported:
        yield imported


def publish(exchange: str, key: str, body: bytes = b"{}") -> Action:
    """A confirmed, mandatory publish: a refusal or a missing route cannot pass unnoticed."""

    def run(channel: BlockingChannel) -> None:
        channel.confirm_delivery()
        channel.basic_publish(exchange, key, body, pika.BasicProperties(content_type="image/jpeg"))

    return run


def get(queue: str) -> Action:
    return lambda channel: channel.basic_get(queue, auto_ack=False)


def consume(queue: str) -> Action:
    return lambda channel: channel.basic_consume(queue, lambda *_: None)


def purge(queue: str) -> Action:
    return lambda channel: channel.queue_purge(queue)


def delete(queue: str) -> Action:
    return lambda channel: channel.queue_delete(queue)


def declare_queue(name: str) -> Action:
    return lambda channel: channel.queue_declare(name, durable=True)


def declare_exchange(name: str) -> Action:
    return lambda channel: channel.exchange_declare(name, "topic", durable=True)


def bind(queue: str, exchange: str, key: str) -> Action:
    return lambda channel: channel.queue_bind(queue, exchange, key)


def model_events_queue(channel: BlockingChannel) -> None:
    channel.basic_consume(declare_model_events_queue(channel, "0123456789ab"), lambda *_: None)


FRAMES_1, FRAMES_2 = frames_queue("line-1"), frames_queue("line-2")
DECISIONS_1, DECISIONS_2 = decisions_queue("line-1"), decisions_queue("line-2")
REVIEW_1 = review_queue("line-1")
PROMOTION = json.dumps({"version": "fake", "onnx_sha256": "0" * 64}).encode()

# (role, what it tries, the attempt, allowed?) -- role users of line-1 where the role has a line.
CASES: list[tuple[str, str, Action, bool]] = [
    ("camera", "publish a frame of its line", publish(FRAMES_EXCHANGE, "frames.line-1.cam-1"), True),
    ("camera", "publish a frame of another line", publish(FRAMES_EXCHANGE, "frames.line-2.cam-1"), False),
    ("camera", "publish a fake decision", publish(DECISIONS_EXCHANGE, "decisions.line-1.glass"), False),
    ("camera", "announce a model promotion", publish(MODEL_EVENTS_EXCHANGE, "", PROMOTION), False),
    ("camera", "publish a fake dead letter", publish(DEAD_LETTER_EXCHANGE, "frames.line-1.cam-1"), False),
    ("camera", "read its line's frames", get(FRAMES_1), False),
    ("camera", "purge its line's frames queue", purge(FRAMES_1), False),
    ("camera", "delete its line's frames queue", delete(FRAMES_1), False),
    ("camera", "declare a queue", declare_queue("sortline.camera-queue"), False),
    ("camera", "declare an exchange", declare_exchange("sortline.camera-exchange"), False),
    ("camera", "read the decisions", consume(DECISIONS_1), False),
    ("worker", "consume its line's frames", consume(FRAMES_1), True),
    ("worker", "publish a decision of its line", publish(DECISIONS_EXCHANGE, "decisions.line-1.glass"), True),
    ("worker", "dead-letter a frame of its line", publish(DEAD_LETTER_EXCHANGE, "frames.line-1.cam-1"), True),
    ("worker", "declare and consume its model-events queue", model_events_queue, True),
    ("worker", "publish a frame", publish(FRAMES_EXCHANGE, "frames.line-1.cam-1"), False),
    (
        "worker",
        "publish a decision of another line",
        publish(DECISIONS_EXCHANGE, "decisions.line-2.glass"),
        False,
    ),
    (
        "worker",
        "dead-letter a frame of another line",
        publish(DEAD_LETTER_EXCHANGE, "frames.line-2.cam-1"),
        False,
    ),
    ("worker", "announce a model promotion", publish(MODEL_EVENTS_EXCHANGE, "", PROMOTION), False),
    ("worker", "consume another line's frames", consume(FRAMES_2), False),
    ("worker", "delete its line's frames queue", delete(FRAMES_1), False),
    ("worker", "read the dead letters", get(DEAD_LETTER_QUEUE), False),
    ("worker", "read its line's decisions", consume(DECISIONS_1), False),
    ("worker", "bind a queue to the frames", bind(FRAMES_1, FRAMES_EXCHANGE, "frames.#"), False),
    ("ejector", "consume its line's decisions", consume(DECISIONS_1), True),
    ("ejector", "consume another line's decisions", consume(DECISIONS_2), False),
    ("ejector", "publish a decision", publish(DECISIONS_EXCHANGE, "decisions.line-1.glass"), False),
    ("ejector", "publish a frame", publish(FRAMES_EXCHANGE, "frames.line-1.cam-1"), False),
    ("ejector", "read its line's frames", get(FRAMES_1), False),
    ("ejector", "delete its decisions queue", delete(DECISIONS_1), False),
    ("trainer", "announce a model promotion", publish(MODEL_EVENTS_EXCHANGE, "", PROMOTION), True),
    ("trainer", "publish a frame", publish(FRAMES_EXCHANGE, "frames.line-1.cam-1"), False),
    ("trainer", "publish a decision", publish(DECISIONS_EXCHANGE, "decisions.line-1.glass"), False),
    ("trainer", "read a line's frames", get(FRAMES_1), False),
    ("trainer", "declare an exchange", declare_exchange(MODEL_EVENTS_EXCHANGE + "-2"), False),
    ("worker", "send an item to review", publish(REVIEW_EXCHANGE, "review.line-1.abstained"), True),
    ("worker", "send another line's item to review", publish(REVIEW_EXCHANGE, "review.line-2.audit"), False),
    ("reviewer", "take a line's review items", consume(REVIEW_1), True),
    ("reviewer", "take another line's review items", consume(review_queue("line-2")), True),
    ("reviewer", "publish a review item", publish(REVIEW_EXCHANGE, "review.line-1.audit"), False),
    ("reviewer", "read a line's frames", get(FRAMES_1), False),
    ("reviewer", "read the decisions", consume(DECISIONS_1), False),
    ("camera", "read the review items", consume(REVIEW_1), False),
    ("monitor", "publish a frame", publish(FRAMES_EXCHANGE, "frames.line-1.cam-1"), False),
    ("monitor", "read a line's frames", get(FRAMES_1), False),
]


def attempt(site: Site, role: str, action: Action) -> int | None:
    """Run ``action`` as ``role`` (of line-1); the reply code that closed the channel, or None."""
    connection = site.connect(role, "line-1" if role in ("camera", "worker", "ejector") else None)
    try:
        action(connection.channel())
        return None
    except ChannelClosedByBroker as error:
        return error.reply_code
    finally:
        if connection.is_open:
            connection.close()


@pytest.mark.parametrize(
    ("role", "what", "action", "allowed"), CASES, ids=[f"{role}: {what}" for role, what, _, _ in CASES]
)
def test_role_may_do_only_its_job(site: Site, role: str, what: str, action: Action, allowed: bool) -> None:
    code = attempt(site, role, action)
    if allowed:
        assert code is None, f"{role} could not {what} (reply code {code})"
    else:
        assert code == 403, f"{role} could {what}" if code is None else f"{role}: {what} gave {code}"


def test_no_role_but_admin_may_touch_another_vhost(site: Site, amqp_url: str) -> None:
    """A site's users have no rights in the broker's other vhosts (another site, the default one)."""
    for role in ("camera", "worker", "ejector", "trainer"):
        url = site.url(role, "line-1").rsplit("/", 1)[0] + "/%2F"
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
            pika.BlockingConnection(pika.URLParameters(url))


def _decisions_for_the_ejector(site: Site, count: int, timeout: float = 60.0) -> list[dict]:
    """What the line's ejector bridge would take: its decisions queue, read as the ejector user."""
    connection = site.connect("ejector", "line-1")
    channel = connection.channel()
    decisions: list[dict] = []
    deadline = time.monotonic() + timeout
    try:  # consumed, not got: the queue has one active consumer at a time, which basic.get bypasses
        for _method, _properties, body in channel.consume(DECISIONS_1, auto_ack=True, inactivity_timeout=0.2):
            if body is not None:
                decisions.append(json.loads(body))
            if len(decisions) >= count or time.monotonic() > deadline:
                break
        channel.cancel()
    finally:
        connection.close()
    return decisions


def test_a_line_runs_with_its_roles_and_the_checked_topology(
    site: Site, tiny_model_dir: Path, sample_images: list[Path], tmp_path: Path
) -> None:
    """Camera, worker and trainer as the site's users with --topology check, as deploy/ runs them:
    frames reach the worker, decisions the ejector's queue, a promotion the worker."""
    folder = tmp_path / "replay"
    folder.mkdir()
    for image in sample_images[:6]:
        shutil.copy(image, folder / image.name)
    served = tmp_path / "models" / "default"
    shutil.copytree(tiny_model_dir, served)
    check = ("--topology", "check")
    admin = site.connect("admin")  # what the rights tests above left in line-1's queues goes first
    for queue in (FRAMES_1, DECISIONS_1):
        admin.channel().queue_purge(queue)
    admin.close()
    with WorkerProcess(site.url("worker", "line-1"), "line-1", served, *check) as worker:
        worker.wait_ready()
        _wait_until(lambda: probe(f"http://127.0.0.1:{worker.metrics_port}/readyz")[0], 30, "worker ready")
        with AgentProcess(site.url("camera", "line-1"), "line-1", folder, *check, "--fps", "0") as agent:
            assert agent.wait(timeout=60) == 0, agent.output()
        decisions = _decisions_for_the_ejector(site, 6)
        assert sorted(d["source"] for d in decisions) == sorted(p.name for p in folder.iterdir())
        promoted = subprocess.run(
            [sys.executable, "-m", "trainer.cli", "promote", "--model", str(tiny_model_dir),
             "--to", str(served), *check],
            env=process_env(site.url("trainer")), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert promoted.returncode == 0, promoted.stderr
        _wait_until(
            lambda: worker.metrics().total("sortline_model_reloads_total") >= 1, 30, "the worker heard it"
        )
        assert worker.alive, worker.output()


@pytest.mark.parametrize(
    ("role", "topology", "says"),
    [
        ("worker", "declare", "declare the topology in the broker's definitions"),
        ("camera", "check", "ACCESS_REFUSED"),  # a camera's password does not make a worker
    ],
)
def test_a_worker_without_the_rights_it_needs_exits_2_and_says_why(
    site: Site, tiny_model_dir: Path, role: str, topology: str, says: str
) -> None:
    worker = WorkerProcess(site.url(role, "line-1"), "line-1", tiny_model_dir, "--topology", topology)
    with worker:
        code = worker.process.wait(60)
    assert code == 2
    assert says in worker.output()
    assert site.passwords[site.user(role, "line-1")] not in worker.output()


def test_a_camera_without_its_queue_exits_2_and_names_it(site: Site, sample_images: list[Path]) -> None:
    """--topology check with a line the definitions lack: a clear exit, not a reconnect loop."""
    agent = AgentProcess(site.url("camera", "line-1"), "line-9", sample_images[0], "--topology", "check")
    with agent:
        code = agent.wait(timeout=60)
    assert code == 2
    assert "sortline.frames.line-9" in agent.output()


def _wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_camera_publishing_for_another_line_exits_2(site: Site, sample_images: list[Path]) -> None:
    """line-1's camera password used for line-2: the broker refuses the key, the agent stops."""
    agent = AgentProcess(site.url("camera", "line-1"), "line-2", sample_images[0], "--topology", "check")
    with agent:
        code = agent.wait(timeout=60)
    assert code == 2
    assert "ACCESS_REFUSED" in agent.output() and "frames.line-2.cam-1" in agent.output()
