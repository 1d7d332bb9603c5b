"""Hot reload through the real RabbitMQ: `trainer promote` installs a model and announces it, a
running worker serves it from its next batch, and a promotion that does not load leaves the old
model serving."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from sortline.manifest import ModelIntegrityError
from sortline.messages import DecisionMessage
from sortline_dev.publishing import frame_headers, publish_frames
from sortline_dev.taps import decisions_tap
from tests.support.workers import running_worker
from tests.tiny_model import write_tiny_model
from trainer.cli import main as trainer_main
from trainer.release.promote import announce, install

pytestmark = pytest.mark.broker


def green_frame(line_id: str, seq: int) -> tuple[bytes, dict, str]:
    body = cv2.imencode(".jpg", np.full((96, 128, 3), (0, 200, 0), dtype=np.uint8))[1].tobytes()
    return body, frame_headers(line_id, seq), "image/jpeg"


def reloads(worker, result: str) -> float:
    value = worker.registry.get_sample_value("sortline_model_reloads_total", {"result": result})
    return value or 0.0


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def versions(received) -> list[str]:
    return [DecisionMessage.from_json(m.body).model_version for m in received]


def test_a_promoted_model_is_served_from_the_next_batch(amqp_url, line_id, tmp_path: Path) -> None:
    served = write_tiny_model(tmp_path / "models" / "default", version="tiny-v1")
    candidate = write_tiny_model(tmp_path / "candidate", version="tiny-v2", seed=1)
    with decisions_tap(amqp_url, line_id) as decisions, running_worker(amqp_url, line_id, served) as worker:
        publish_frames(amqp_url, line_id, [green_frame(line_id, 0)])
        assert versions(decisions.collect(1, timeout=20)) == ["tiny-v1"]
        argv = ["promote", "--model", str(candidate), "--to", str(served), "--amqp-url", amqp_url]
        assert trainer_main(argv) == 0
        wait_for(lambda: reloads(worker, "ok") == 1)
        publish_frames(amqp_url, line_id, [green_frame(line_id, 1)])
        assert versions(decisions.collect(2, timeout=20)) == ["tiny-v1", "tiny-v2"]
        info = {s.labels["version"]: s.value for s in worker.metrics.model_info.collect()[0].samples}
        assert info == {"tiny-v2": 1.0}  # the old version's series is gone
        assert not list(served.parent.glob(".default.*"))  # no staging or retired copies left


def test_a_promotion_that_fails_to_load_keeps_the_old_model(amqp_url, line_id, tmp_path: Path) -> None:
    served = write_tiny_model(tmp_path / "served", version="tiny-v1")
    candidate = write_tiny_model(tmp_path / "candidate", version="tiny-v2", seed=1)
    with decisions_tap(amqp_url, line_id) as decisions, running_worker(amqp_url, line_id, served) as worker:
        manifest = install(candidate, served)
        (served / "model.onnx").write_bytes(b"corrupted after the copy")  # e.g. a bad volume
        announce(amqp_url, manifest)
        wait_for(lambda: reloads(worker, "failed") >= 1)  # the event, or the look at connection
        publish_frames(amqp_url, line_id, [green_frame(line_id, 0)])
        assert versions(decisions.collect(1, timeout=20)) == ["tiny-v1"]


def test_promote_refuses_a_model_whose_files_do_not_match(tmp_path: Path) -> None:
    served = write_tiny_model(tmp_path / "served", version="tiny-v1")
    candidate = write_tiny_model(tmp_path / "candidate", version="tiny-v2", seed=1)
    (candidate / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(ModelIntegrityError):
        install(candidate, served)
    assert (served / "model.onnx").is_file() and not list(tmp_path.glob(".served.*"))


def test_an_unchanged_directory_is_not_reloaded(amqp_url, line_id, tmp_path: Path) -> None:
    """Every worker hears every promotion; one serving another directory has nothing to do."""
    served = write_tiny_model(tmp_path / "served", version="tiny-v1")
    other = write_tiny_model(tmp_path / "other-line", version="tiny-v2", seed=1)
    with running_worker(amqp_url, line_id, served) as worker:
        announce(amqp_url, install(other, tmp_path / "elsewhere"))
        wait_for(lambda: reloads(worker, "unchanged") >= 1)
        assert reloads(worker, "ok") == 0 and reloads(worker, "failed") == 0
    shutil.rmtree(tmp_path / "elsewhere")


def test_promote_reads_the_broker_from_a_secret_file(amqp_url, line_id, tmp_path: Path, monkeypatch) -> None:
    """Like every process, promote takes its credentials from SORTLINE_AMQP_URL_FILE, over the env."""
    served = write_tiny_model(tmp_path / "served", version="tiny-v1")
    other = write_tiny_model(tmp_path / "other-line", version="tiny-v2", seed=1)
    secret = tmp_path / "amqp-url"
    secret.write_text(amqp_url + "\n")
    monkeypatch.setenv("SORTLINE_AMQP_URL", "amqp://nobody:wrong@127.0.0.1:1/")  # the file wins
    monkeypatch.setenv("SORTLINE_AMQP_URL_FILE", str(secret))
    with running_worker(amqp_url, line_id, served) as worker:
        assert trainer_main(["promote", "--model", str(other), "--to", str(tmp_path / "elsewhere")]) == 0
        wait_for(lambda: reloads(worker, "unchanged") >= 1)


def test_promote_with_an_unreadable_secret_file_installs_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    candidate = write_tiny_model(tmp_path / "candidate", version="tiny-v2")
    monkeypatch.setenv("SORTLINE_AMQP_URL_FILE", str(tmp_path / "missing"))
    assert trainer_main(["promote", "--model", str(candidate), "--to", str(tmp_path / "served")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert not (tmp_path / "served").exists()
