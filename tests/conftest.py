"""Shared fixtures: a real RabbitMQ (never mocked), unique line ids, models, sample images."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import pika
import pytest

from sortline.topology import delete_line
from sortline_dev.broker import BrokerUnavailable, provide_broker
from sortline_dev.metrics import Scrape, scrape
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


@pytest.fixture(scope="session")
def rabbitmq_metrics(amqp_url: str) -> Callable[[], Scrape]:
    """Scrapes the broker's own Prometheus endpoint (plugin rabbitmq_prometheus, port 15692).

    ``SORTLINE_RABBITMQ_METRICS_URL`` overrides where; ``make test`` enables the plugin on a local
    broker. Locally without it the tests that need it skip; in CI they fail.
    """
    host = urlsplit(amqp_url).hostname or "localhost"
    url = os.environ.get("SORTLINE_RABBITMQ_METRICS_URL") or f"http://{host}:15692/metrics"
    try:
        scrape(url)
    except OSError as error:
        message = f"no RabbitMQ metrics at {url} ({error}); enable the rabbitmq_prometheus plugin"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return lambda: scrape(url)


@pytest.fixture
def line_id(amqp_url: str) -> Iterator[str]:
    """A line id no other test uses, so tests never see each other's frames; its queue is removed after."""
    line = f"t-{uuid.uuid4().hex[:10]}"
    yield line
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        delete_line(connection.channel(), line)
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
