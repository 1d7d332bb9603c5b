"""The review loop on the real broker: what the line finds hard goes to review (abstained, shadow
disagreements), a shadow candidate never decides, and a person labels the items in the browser."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pika
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from sortline.manifest import MANIFEST_FILE
from sortline.messages import REVIEW_DECISION_HEADER, REVIEW_SHADOW_HEADER, REVIEW_WHY_HEADER
from sortline.registry import CANDIDATE, CURRENT, ModelRegistry
from sortline.topology import review_queue
from sortline_dev.processes import ServiceProcess, WorkerProcess, free_port
from sortline_dev.publishing import frame_headers, publish_frames
from sortline_dev.taps import decisions_tap
from tests.support.browser import chromium
from tests.tiny_model import write_tiny_model
from trainer.review.page import label_keys

pytestmark = pytest.mark.broker


def colours(count: int, seed: int = 1) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [cv2.imencode(".jpg", np.full((64, 64, 3), rng.integers(0, 256, 3), dtype=np.uint8))[1].tobytes()
            for _ in range(count)]  # fmt: skip


def take_review(amqp_url: str, line_id: str, count: int, timeout: float = 20.0) -> list[dict]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    taken, deadline = [], time.monotonic() + timeout
    while len(taken) < count and time.monotonic() < deadline:
        method, properties, _body = channel.basic_get(review_queue(line_id), auto_ack=True)
        if method is None:
            time.sleep(0.1)
        else:
            taken.append(properties.headers)
    connection.close()
    return taken


def registry_with(tmp_path: Path, current_seed: int, candidate_seed: int | None) -> Path:
    registry = ModelRegistry(tmp_path / "registry")
    current = registry.publish(
        write_tiny_model(tmp_path / "current", version="tiny-current", seed=current_seed)
    )
    registry.point(CURRENT, current, "promote")
    if candidate_seed is not None:
        model = write_tiny_model(tmp_path / "candidate", version="tiny-candidate", seed=candidate_seed)
        registry.point(CANDIDATE, registry.publish(model), "shadow")
    return registry.root


def shadow_looked_at(metrics) -> float:
    return metrics.total("sortline_shadow_decisions_total") + metrics.total("sortline_shadow_skipped_total")


def test_a_shadow_candidate_is_compared_never_decides_and_its_disagreements_go_to_review(
    amqp_url, line_id, tmp_path
):
    registry = registry_with(tmp_path, 0, 7)
    frames = [(body, frame_headers(line_id, seq), "image/jpeg") for seq, body in enumerate(colours(40))]
    worker = WorkerProcess(amqp_url, line_id, registry, "--shadow", "--shadow-share", "1.0",
                           "--review-audit-share", "0")  # fmt: skip
    with decisions_tap(amqp_url, line_id) as decided, worker:
        worker.wait_serving(timeout=60)
        deadline = time.monotonic() + 30
        while worker.metrics().total("sortline_shadow_model_info", version="tiny-candidate") != 1:
            assert time.monotonic() < deadline, "the shadow candidate was not loaded"
            time.sleep(0.2)
        publish_frames(amqp_url, line_id, frames)
        decided.collect(40, timeout=30)
        deadline = time.monotonic() + 30
        while shadow_looked_at(worker.metrics()) < 40 and time.monotonic() < deadline:
            time.sleep(0.2)
        metrics = worker.metrics()
    assert {r.decision().model_version for r in decided.received} == {"tiny-current"}
    compared = metrics.total("sortline_shadow_decisions_total")
    agreed = sum(s.value for s in metrics.samples if s.name == "sortline_shadow_decisions_total"
                 and s.labels["current_bin"] == s.labels["candidate_bin"])  # fmt: skip
    # Each frame is compared or, on a busy machine, skipped for lack of time (its budget): none lost.
    assert shadow_looked_at(metrics) == 40 and compared >= 20
    assert 0 < agreed < compared  # other weights: some answers differ
    disagreements = take_review(amqp_url, line_id, int(compared - agreed))
    assert len(disagreements) == compared - agreed
    for headers in disagreements:
        line, candidate = (
            json.loads(headers[REVIEW_DECISION_HEADER]),
            json.loads(headers[REVIEW_SHADOW_HEADER]),
        )
        assert headers[REVIEW_WHY_HEADER] == "disagreement" and line["bin"] != candidate["bin"]
        assert candidate["model_version"] == "tiny-candidate"


def test_what_the_model_abstains_on_goes_to_review(amqp_url, line_id, tmp_path):
    registry = registry_with(tmp_path, 0, None)
    manifest_path = next((registry / "versions").iterdir()) / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest["thresholds"]["material_min_confidence"] = 0.999  # the tiny model is never that sure
    manifest_path.write_text(json.dumps(manifest))
    frames = [
        (body, frame_headers(line_id, seq), "image/jpeg") for seq, body in enumerate(colours(6, seed=4))
    ]
    with WorkerProcess(amqp_url, line_id, registry, "--review-audit-share", "0") as worker:
        worker.wait_serving(timeout=60)
        publish_frames(amqp_url, line_id, frames)
        reviewed = take_review(amqp_url, line_id, 1)
    assert reviewed and reviewed[0][REVIEW_WHY_HEADER] == "abstained"
    assert json.loads(reviewed[0][REVIEW_DECISION_HEADER])["residual_reason"] == "low-confidence"


def test_a_person_labels_review_items_in_the_browser_one_key_each(amqp_url, line_id, tmp_path):
    registry = registry_with(tmp_path, 0, None)
    frames = [
        (body, frame_headers(line_id, seq), "image/jpeg") for seq, body in enumerate(colours(3, seed=9))
    ]
    with WorkerProcess(amqp_url, line_id, registry, "--review-audit-share", "1.0") as worker:
        worker.wait_serving(timeout=60)
        publish_frames(amqp_url, line_id, frames)
        time.sleep(2)  # every item decided, and audited
    out, port = tmp_path / "labelled", free_port()
    arguments = ["review", "--line-id", line_id, "--out", str(out), "--port", str(port)]
    review = ServiceProcess("trainer.cli", arguments, amqp_url, metrics_port=False)
    with review, chromium() as browser:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/next", timeout=2).read()
                break
            except OSError:
                review.check_alive()
                assert time.monotonic() < deadline, "the review page did not come up"
                time.sleep(0.2)
        browser.get(f"http://127.0.0.1:{port}/")
        confirmed = None
        for key in ("g", " ", Keys.ENTER):  # glass, skip, confirm what the line decided
            wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#views img"))
            shown = browser.find_element(By.ID, "status").text
            if key == Keys.ENTER:
                confirmed = browser.find_element(By.ID, "confirm").text.removeprefix("Enter: ")
            browser.find_element(By.TAG_NAME, "body").send_keys(key)
            wait_for(lambda shown=shown: browser.find_element(By.ID, "status").text != shown)
        wait_for(lambda: browser.find_element(By.ID, "status").text
                 == "2 labelled, 1 skipped; nothing to review")  # fmt: skip
    assert confirmed in label_keys().values()
    assert sorted(p.parent.name for p in out.rglob("*.jpg")) == sorted(["glass", confirmed])
    assert take_review(amqp_url, line_id, 1, timeout=2) == []  # labelled and skipped: all taken off


def wait_for(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
