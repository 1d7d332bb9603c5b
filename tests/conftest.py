"""Shared fixtures: a real RabbitMQ (never mocked), unique line ids, models, sample images."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pika
import pytest

from sortline.topology import frames_queue
from sortline_dev.broker import BrokerUnavailable, provide_broker
from tests.tiny_model import write_tiny_model

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples" / "demo"
DEFAULT_MODEL = REPO / "models" / "default"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that restart the broker run last, so no other test sees the broker go away."""
    items.sort(key=lambda item: item.get_closest_marker("restarts_broker") is not None)


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A reachable broker. Locally without one the broker tests skip; in CI (CI=true) they fail."""
    stack = ExitStack()
    try:
        url = stack.enter_context(provide_broker())
    except BrokerUnavailable as error:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI needs a real RabbitMQ: {error}")
        pytest.skip(str(error))
    with stack:
        yield url


@pytest.fixture
def line_id(amqp_url: str) -> Iterator[str]:
    """A line id no other test uses, so tests never see each other's frames; its queue is removed after."""
    line = f"t-{uuid.uuid4().hex[:10]}"
    yield line
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        connection.channel().queue_delete(frames_queue(line))
    finally:
        connection.close()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def sample_images() -> list[Path]:
    images = sorted(SAMPLES.rglob("*.jpg"))
    assert images, f"the demo sample {SAMPLES} is missing"
    return images
