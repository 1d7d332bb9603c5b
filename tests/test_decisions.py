"""A residual decision says why in figures a person can check; confidences printed never read as 1."""

from __future__ import annotations

import json
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from classifier_worker.decisions import build_decision
from classifier_worker.frames import Delivery, Frame
from classifier_worker.metrics import WorkerMetrics
from classifier_worker.processor import BatchProcessor, Decided
from classifier_worker.settings import WorkerSettings
from sortline.cascade import CascadeDecision, CascadeThresholds, ResidualReason
from sortline.manifest import MANIFEST_FILE
from sortline.messages import DecisionMessage, FrameHeaders
from sortline.readable import confidence_text
from sortline_runtime.model import CascadeModel
from tests.test_processor import delivery

THRESHOLDS = CascadeThresholds(organic=0.2, material_min_confidence=0.9995)


def frame() -> Frame:
    headers = FrameHeaders(line_id="l", camera_id="c", seq=1, captured_at_ns=time.time_ns())
    return Frame(Delivery(1, False, "frames.l.c", b"x", "image/jpeg", "f1", None, {}), headers, "f1", None)


def decided(decision: CascadeDecision) -> DecisionMessage:
    message = build_decision(frame(), decision, 0.01, [0.0] * 5 + [1.0], "v1", None, THRESHOLDS)
    return DecisionMessage.from_json(message.to_json())  # as a consumer reads it


def test_a_low_confidence_residual_names_the_threshold_it_missed() -> None:
    message = decided(CascadeDecision("residual", 0.999418, "plastic", ResidualReason.LOW_CONFIDENCE))
    assert (message.residual_reason, message.residual_threshold) == ("low-confidence", 0.9995)
    assert message.residual_detail == "top material plastic 0.999418 < 0.9995"


def test_a_figure_rounded_onto_the_threshold_gets_the_digits_that_keep_it_below() -> None:
    message = decided(CascadeDecision("residual", 0.99949996, "glass", ResidualReason.LOW_CONFIDENCE))
    assert message.residual_detail == "top material glass 0.99949996 < 0.9995"


def test_trash_and_sorted_items_say_what_they_are() -> None:
    trash = decided(CascadeDecision("residual", 0.97, "trash", ResidualReason.TRASH))
    assert (trash.residual_threshold, trash.residual_detail) == (None, "top material is trash (0.970000)")
    plastic = decided(CascadeDecision("plastic", 0.9999, "plastic"))
    assert (plastic.residual_reason, plastic.residual_threshold, plastic.residual_detail) == (
        None,
        None,
        None,
    )
    assert "residual_threshold" in json.loads(plastic.to_json())  # the field is always there, null here


@pytest.mark.parametrize(
    ("p", "threshold", "text"),
    [
        (0.999418, None, "0.9994"),  # not 1.00
        (0.99996, None, "0.99996"),  # not 1.0000
        (0.999418, 0.9995, "0.9994"),
        (0.99949996, 0.9995, "0.99949996"),  # not 0.9995, which would seem to meet it
        (0.5, None, "0.5000"),
        (1.0, None, "1.0000"),
    ],
)
def test_confidence_text(p: float, threshold: float | None, text: str) -> None:
    assert confidence_text(p, threshold) == text


def test_the_worker_takes_the_threshold_from_the_served_manifest(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "strict")
    manifest = json.loads((model_dir / MANIFEST_FILE).read_text())
    manifest["thresholds"] = {"organic": 1.0, "material_min_confidence": 0.999999}
    (model_dir / MANIFEST_FILE).write_text(json.dumps(manifest))
    settings = WorkerSettings(model=model_dir, line_id="l")
    with ThreadPoolExecutor(2) as executor:
        processor = BatchProcessor(CascadeModel.load(model_dir), settings, WorkerMetrics(CollectorRegistry()),
                                   executor)  # fmt: skip
        outcomes = processor.process([delivery(tag, color) for tag, color in enumerate((10, 90, 170, 250))])
    doubtful = [o.message for o in outcomes if isinstance(o, Decided) and o.message.residual_threshold]
    assert doubtful, [o.message.residual_detail for o in outcomes if isinstance(o, Decided)]
    for message in doubtful:
        assert message.residual_threshold == 0.999999
        assert re.fullmatch(
            rf"top material {message.material} 0\.\d{{6,9}} < 0\.999999", message.residual_detail
        )


def test_a_model_with_a_hazard_output_sends_hazards_to_their_bin_and_counts_them(tmp_path: Path) -> None:
    from tests.tiny_model import write_tiny_model

    model_dir = write_tiny_model(tmp_path / "hazard", hazard=True)
    metrics = WorkerMetrics(CollectorRegistry())
    with ThreadPoolExecutor(2) as executor:
        processor = BatchProcessor(CascadeModel.load(model_dir), WorkerSettings(model=model_dir, line_id="l"),
                                   metrics, executor)  # fmt: skip
        outcomes = processor.process([delivery(tag, color) for tag, color in enumerate((10, 170, 250))])
    messages = [o.message for o in outcomes if isinstance(o, Decided)]
    assert [m.bin == "hazard" for m in messages] == [False, False, True]
    assert all(m.p_hazard is not None for m in messages) and messages[2].p_hazard > 0.5
    assert messages[2].material is None
    for message in messages:
        metrics.record_decision(message)
    assert metrics.registry.get_sample_value("sortline_hazard_items_total", {"line": "l"}) == 1.0


def test_a_model_without_a_hazard_output_serves_and_never_names_p_hazard(tiny_model_dir: Path) -> None:
    with ThreadPoolExecutor(2) as executor:
        processor = BatchProcessor(CascadeModel.load(tiny_model_dir),
                                   WorkerSettings(model=tiny_model_dir, line_id="l"),
                                   WorkerMetrics(CollectorRegistry()), executor)  # fmt: skip
        outcomes = processor.process([delivery(tag, color) for tag, color in enumerate((10, 250))])
    messages = [o.message for o in outcomes if isinstance(o, Decided)]
    assert len(messages) == 2
    assert all(m.bin != "hazard" and b"p_hazard" not in m.to_json() for m in messages)
