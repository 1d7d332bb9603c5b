"""An item's views: split from one body, combined into one prediction, decided once."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from classifier_worker.frames import Delivery
from classifier_worker.metrics import WorkerMetrics
from classifier_worker.processor import BatchProcessor, Decided, Rejected
from classifier_worker.settings import WorkerSettings
from classifier_worker.views import combine_views, split_views
from sortline.messages import DeadLetterReason, InvalidFrame
from sortline_runtime.model import CascadeModel, Prediction


def test_views_are_cut_at_their_sizes_and_must_fill_the_body() -> None:
    assert split_views(b"aaabbbbc", [3, 4, 1]) == [b"aaa", b"bbbb", b"c"]
    assert split_views(b"whole", None) == [b"whole"]
    with pytest.raises(InvalidFrame) as caught:
        split_views(b"aaabbb", [3, 4])
    assert caught.value.reason is DeadLetterReason.INVALID_HEADERS and "add up to 7" in caught.value.detail


def prediction(organic: list[float], materials: list[list[float]]) -> Prediction:
    return Prediction(np.array(organic, np.float32), np.array(materials, np.float32))


def test_mean_averages_probabilities_per_item() -> None:
    rows = prediction([0.2, 0.4, 0.9], [[0.6, 0.4], [0.2, 0.8], [1.0, 0.0]])
    combined = combine_views(rows, [2, 1], "mean")
    np.testing.assert_allclose(combined.p_organic, [0.3, 0.9], rtol=1e-6)
    np.testing.assert_allclose(combined.material_probs, [[0.4, 0.6], [1.0, 0.0]], rtol=1e-6)


def test_log_mean_is_a_normalised_geometric_mean() -> None:
    rows = prediction([0.5, 0.9], [[0.9, 0.1], [0.5, 0.5]])
    combined = combine_views(rows, [2], "log-mean")
    expected = np.array([np.sqrt(0.45), np.sqrt(0.05)])
    np.testing.assert_allclose(combined.material_probs[0], expected / expected.sum(), rtol=1e-5)
    assert combined.p_organic[0] == pytest.approx(0.75, abs=1e-6)  # log-odds 0 and log 9: mean log 3


def test_the_hazard_probability_is_combined_like_organic_and_stays_absent_without_one() -> None:
    rows = prediction([0.2, 0.4, 0.9], [[0.6, 0.4], [0.2, 0.8], [1.0, 0.0]])
    assert combine_views(rows, [2, 1], "mean").p_hazard is None
    with_hazard = Prediction(rows.p_organic, rows.material_probs, np.array([0.5, 0.9, 0.1], np.float32))
    np.testing.assert_allclose(combine_views(with_hazard, [2, 1], "mean").p_hazard, [0.7, 0.1], rtol=1e-6)
    assert combine_views(with_hazard, [2, 1], "log-mean").p_hazard[0] == pytest.approx(0.75, abs=1e-6)


def jpeg(colour: tuple[int, int, int]) -> bytes:
    return cv2.imencode(".jpg", np.full((64, 64, 3), colour, dtype=np.uint8))[1].tobytes()


def item_delivery(tag: int, views: list[bytes]) -> Delivery:
    headers = {"line_id": "l", "camera_id": "c", "seq": tag, "captured_at_ns": time.time_ns(),
               "item_id": f"i{tag}", "view_bytes": [len(v) for v in views]}  # fmt: skip
    return Delivery(tag, False, "frames.l.c", b"".join(views), "image/jpeg", f"m{tag}", None, headers)


def test_an_item_with_three_views_is_decided_once_on_their_combination(tiny_model_dir) -> None:
    model = CascadeModel.load(tiny_model_dir)
    settings = WorkerSettings(model=tiny_model_dir, line_id="l", metrics_port=0)
    green, red = jpeg((0, 200, 0)), jpeg((0, 0, 200))
    with ThreadPoolExecutor(2) as executor:
        processor = BatchProcessor(model, settings, WorkerMetrics(CollectorRegistry()), executor)
        deliveries = [item_delivery(1, [green, green, red]), item_delivery(2, [green])]
        item, single, broken = processor.process([*deliveries, item_delivery(3, [green, b"x"])])
        separately = [processor.process([item_delivery(9, [view])])[0] for view in (green, red)]
    assert isinstance(item, Decided) and item.message.views == 3 and item.message.item_id == "i1"
    assert isinstance(single, Decided) and single.message.views == 1
    # the mean of the views' probabilities: two green views and one red
    views = [s.message.material_probs for s in separately]
    expected = {m: (2 * views[0][m] + views[1][m]) / 3 for m in views[0]}
    assert item.message.material_probs == pytest.approx(expected, abs=2e-6)
    # a view that cannot be decoded: the item goes to the dead letters whole, to be replayed
    assert isinstance(broken, Rejected) and broken.reason is DeadLetterReason.UNDECODABLE_IMAGE


def test_views_decoded_on_the_device_are_combined_the_same_way(tiny_model_dir) -> None:
    from classifier_worker.device_imaging import DeviceDecoder

    model = CascadeModel.load(tiny_model_dir)
    settings = WorkerSettings(model=tiny_model_dir, line_id="l", metrics_port=0)
    green, red = jpeg((0, 200, 0)), jpeg((0, 0, 200))
    deliveries = [
        item_delivery(1, [green, red, red]),
        item_delivery(2, [red, b"x"]),
        item_delivery(3, [green]),
    ]
    with ThreadPoolExecutor(2) as executor:
        metrics = WorkerMetrics(CollectorRegistry())
        on_cpu = BatchProcessor(model, settings, metrics, executor).process(deliveries)
        decoder = DeviceDecoder(model.manifest.input, "cpu")
        on_device = BatchProcessor(model, settings, metrics, executor, decoder).process(deliveries)
    assert [type(o) for o in on_device] == [Decided, Rejected, Decided] == [type(o) for o in on_cpu]
    for device, cpu in zip(on_device[::2], on_cpu[::2], strict=True):
        assert device.message.views == cpu.message.views
        assert device.message.material_probs == pytest.approx(cpu.message.material_probs, abs=0.02)
