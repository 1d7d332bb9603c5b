"""Decoding on the model's device (nvJPEG on GPU workers), exercised here with torchvision on the CPU."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from classifier_worker.device_imaging import DeviceDecoder, resize_weights
from classifier_worker.frames import Delivery
from classifier_worker.metrics import WorkerMetrics
from classifier_worker.processor import BatchProcessor, Decided, Rejected
from classifier_worker.service import make_device_decoder
from classifier_worker.settings import WorkerSettings
from sortline.manifest import InputSpec
from sortline.messages import DeadLetterReason
from sortline_runtime.imaging import decode_frame, resize_for_model, to_model_input
from sortline_runtime.model import CascadeModel

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "demo"
SPEC = InputSpec()


def sample_jpegs(count: int = 8) -> list[bytes]:
    """Real photos from the committed demo sample, re-encoded at the benchmark's 512x384."""
    bodies = []
    for path in sorted(SAMPLES.rglob("*.jpg"))[:count]:
        image = cv2.resize(cv2.imread(str(path)), (512, 384), interpolation=cv2.INTER_AREA)
        bodies.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    return bodies


def opencv_input(bodies: list[bytes]) -> np.ndarray:
    images = [decode_frame(b, target_size=SPEC.size, max_pixels=10**8) for b in bodies]
    return to_model_input([resize_for_model(image, SPEC) for image in images], SPEC)


def grey_levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Differences of two normalised batches, in 0-255 grey levels."""
    return np.abs(a - b) * np.reshape(SPEC.std, (1, 3, 1, 1)) * 255


def reencoded(bodies: list[bytes], size: tuple[int, int]) -> list[bytes]:
    images = [cv2.resize(cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR), size) for b in bodies]
    return [cv2.imencode(".jpg", image)[1].tobytes() for image in images]


@pytest.mark.parametrize("frame_size", [(512, 384), (200, 150)])  # shrunk (INTER_AREA), enlarged (LINEAR)
def test_device_pixels_are_the_opencv_pixels(frame_size: tuple[int, int]) -> None:
    """The model must see what it was trained on: OpenCV's resize, to within rounding."""
    bodies = reencoded(sample_jpegs(), frame_size)
    batch = DeviceDecoder(SPEC, "cpu").batch(bodies)
    assert batch.decoded == list(range(len(bodies))) and not batch.failed
    assert batch.tensor.shape == (len(bodies), 3, SPEC.size, SPEC.size)
    difference = grey_levels(batch.tensor.numpy(), opencv_input(bodies))
    assert difference.max() <= 1.0 + 1e-3 and difference.mean() < 0.2


def test_resize_weights_average_and_interpolate() -> None:
    area = resize_weights(6, 4, area=True)  # each output covers 1.5 inputs
    np.testing.assert_allclose(area.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(area[0, :2], [2 / 3, 1 / 3], rtol=1e-6)
    linear = resize_weights(2, 4, area=False)
    np.testing.assert_allclose(linear, [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]], atol=1e-6)


def test_a_frame_the_decoder_refuses_is_reported_and_its_neighbours_decoded() -> None:
    good = sample_jpegs(2)
    truncated = good[0][: len(good[0]) // 2]  # header intact, entropy data cut off
    png = cv2.imencode(".png", np.full((40, 60, 3), 90, dtype=np.uint8))[1].tobytes()
    batch = DeviceDecoder(SPEC, "cpu").batch([good[0], truncated, png, b"not an image", good[1]])
    assert batch.decoded == [0, 2, 4]
    assert sorted(batch.failed) == [1, 3]
    assert all(reason.startswith("torchvision could not decode") for reason in batch.failed.values())
    assert batch.tensor.shape[0] == 3


def delivery(tag: int, body: bytes) -> Delivery:
    headers = {"line_id": "l", "camera_id": "c", "seq": tag, "captured_at_ns": time.time_ns()}
    return Delivery(tag, False, "frames.l.c", body, "image/jpeg", f"m{tag}", None, headers)


def test_processor_decides_on_the_device_and_dead_letters_what_it_cannot_decode(tiny_model_dir) -> None:
    model = CascadeModel.load(tiny_model_dir)
    settings = WorkerSettings(model=tiny_model_dir, line_id="l", metrics_port=0, decode="device")
    bodies = sample_jpegs(6)
    deliveries = [delivery(i, body) for i, body in enumerate(bodies)]
    deliveries.insert(3, delivery(99, bodies[0][: len(bodies[0]) // 2]))
    with ThreadPoolExecutor(2) as executor:
        metrics = WorkerMetrics(CollectorRegistry())
        decoder = DeviceDecoder(model.manifest.input, "cpu")
        on_device = BatchProcessor(model, settings, metrics, executor, decoder)
        on_cpu = BatchProcessor(model, settings, metrics, executor)
        device_outcomes = on_device.process(deliveries)
        cpu_outcomes = on_cpu.process([d for d in deliveries if d.delivery_tag != 99])
    rejected = device_outcomes.pop(3)
    assert isinstance(rejected, Rejected) and rejected.reason is DeadLetterReason.UNDECODABLE_IMAGE
    assert all(isinstance(o, Decided) for o in device_outcomes + cpu_outcomes)
    device_probs = np.array([list(o.message.material_probs.values()) for o in device_outcomes])
    cpu_probs = np.array([list(o.message.material_probs.values()) for o in cpu_outcomes])
    np.testing.assert_allclose(device_probs, cpu_probs, atol=0.02)


def test_decode_flag_picks_the_decoder(tiny_model_dir) -> None:
    model = CascadeModel.load(tiny_model_dir)  # on the CPU here
    assert make_device_decoder("cpu", model) is None
    assert make_device_decoder("auto", model) is None  # auto decodes on the device only on a GPU
    decoder = make_device_decoder("device", model)
    assert isinstance(decoder, DeviceDecoder) and decoder.device.type == "cpu"


def test_model_reads_a_device_tensor_in_place(tiny_model_dir) -> None:
    """I/O binding gives the same outputs as the host path for the same input."""
    model = CascadeModel.load(tiny_model_dir)
    spec = model.manifest.input
    batch = DeviceDecoder(spec, "cpu").batch(sample_jpegs(4)).tensor
    host = model.predict(batch.numpy())
    bound = model.predict_on_device(batch)
    np.testing.assert_allclose(bound.material_probs, host.material_probs, atol=1e-6)
    np.testing.assert_allclose(bound.p_organic, host.p_organic, atol=1e-6)
