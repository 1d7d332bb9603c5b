"""``python -m bench.items``: items mode side by side in one run.

On generated 1280x720, 30 fps belt clips (``sortline_dev.belt``, seeds of their own, never the
clips the tests or the pipeline were tuned on):

- the camera agent in items mode, pinned to ONE core, playing each clip at its own rate: the share
  of the clip's frames it kept up with (wall time of the clip over the agent's) and CPU-ms per frame;
- the items it published against the clip's truth: count, belt_x and seq errors;
- accuracy per item of the served model (as a CPU worker serves it) on the item's views: its best
  view alone, the mean of its views' probabilities, and their log-mean; which rule workers use is
  ``--view-combination``;
- items/s through one worker draining those item messages, beside frames/s of the same worker on
  single frames.

Prints JSON on stdout and a table on stderr.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pika
from pydantic import Field
from rich.console import Console
from rich.table import Table

from sortline.belt import ClipGeometry, Observed, clip_geometry_path, match, read_truth
from sortline.labels import expected_bin
from sortline.messages import FrameHeaders
from sortline.settings import SortlineSettings, parse_cli
from sortline.topology import FRAMES_EXCHANGE, declare_line, delete_line, frames_queue, frames_routing_key
from sortline_dev.belt.clip import generate_clip
from sortline_dev.belt.settings import BeltClipSettings
from sortline_dev.broker import connect
from sortline_dev.processes import AgentProcess, WorkerProcess
from sortline_dev.taps import Tap
from sortline_runtime.imaging import decode_frame, resize_for_model, to_model_input
from sortline_runtime.model import DEFAULT_MODEL_DIR, CascadeModel, Prediction

#: The first frames build the empty belt's model; items crossing then are not counted.
WARM_UP_FRAMES = 15
RULES = ("best-view", "mean", "log-mean")


class ItemsBenchSettings(SortlineSettings):
    """Measure items mode: the agent on one core, counting against truth, per-item accuracy by view
    rule, and items/s through one worker."""

    seeds: list[int] = Field([301, 302, 303], min_length=1, description="Clips to generate, one per seed.")
    seconds: float = Field(12.0, gt=1.0, le=600.0, description="Length of each clip.")
    touching: float = Field(0.0, ge=0.0, le=1.0, description="Share of arrivals that come as touching pairs.")
    model: Path = Field(DEFAULT_MODEL_DIR, description="Model the accuracy and the worker use.")
    json_out: Path | None = Field(None, description="Write the JSON here too.")


def make_clip(folder: Path, seed: int, settings: ItemsBenchSettings) -> tuple[Path, ClipGeometry]:
    clip = BeltClipSettings(out=folder / f"belt-{seed}.mp4", seed=seed, seconds=settings.seconds,
                            touching=settings.touching)  # fmt: skip
    generate_clip(clip)
    return clip.out, ClipGeometry.model_validate_json(clip_geometry_path(clip.out).read_text())


def run_agent(url: str, line: str, video: Path, geometry: ClipGeometry) -> dict:
    """The agent on one core, the clip at its own rate; what it published stays in the line's queue."""
    roi = f"{geometry.roi.x},{geometry.roi.y},{geometry.roi.w},{geometry.roi.h}"
    flags = ("--mode", "items", "--roi", roi, "--belt-direction", geometry.direction.value)
    agent = AgentProcess(url, line, video, *flags, cpus={min(os.sched_getaffinity(0))})
    children_cpu = _children_cpu_seconds()
    with agent:
        agent.wait_ready(timeout=60)  # up and connected: from here on it plays the clip
        started = time.monotonic()
        code = agent.wait(timeout=geometry.frames / geometry.fps * 4 + 60)
    wall = time.monotonic() - started
    cpu = _children_cpu_seconds() - children_cpu  # the agent, reaped: start-up included
    if code != 0:
        raise RuntimeError(f"camera-agent exited {code}: {agent.output()[-1500:]}")
    clip_s = geometry.frames / geometry.fps
    return {"frames": geometry.frames, "clip_seconds": clip_s, "agent_seconds": wall, "cpu_seconds": cpu}


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def take_items(url: str, line: str) -> list[tuple[FrameHeaders, list[bytes], bytes]]:
    """The item messages in the line's queue: headers, views, whole body."""
    connection = connect(url)
    channel = connection.channel()
    items = []
    while (message := channel.basic_get(frames_queue(line), auto_ack=True))[0] is not None:
        _method, properties, body = message
        headers = FrameHeaders.from_amqp(properties.headers)
        offsets = np.cumsum([0, *headers.view_bytes])
        views = [body[a:b] for a, b in itertools.pairwise(offsets)]
        items.append((headers, views, body))
    connection.close()
    return items


def view_predictions(model: CascadeModel, views: list[bytes]) -> Prediction:
    spec = model.manifest.input
    pixels = [resize_for_model(decode_frame(v, target_size=spec.size, max_pixels=10**8), spec) for v in views]
    return model.predict(to_model_input(pixels, spec))


def combined(prediction: Prediction, rule: str) -> Prediction:
    if rule == "best-view":  # crops come best first
        return Prediction(prediction.p_organic[:1], prediction.material_probs[:1])
    if rule == "mean":
        return Prediction(prediction.p_organic.mean(keepdims=True), prediction.material_probs.mean(0)[None])
    p = np.clip(prediction.p_organic, 1e-6, 1 - 1e-6)
    organic = 1 / (1 + np.exp(-np.log(p / (1 - p)).mean()))
    geometric = np.exp(np.log(np.clip(prediction.material_probs, 1e-6, 1)).mean(0))
    return Prediction(np.array([organic], np.float32), (geometric / geometric.sum())[None].astype(np.float32))


def score_clip(model: CascadeModel, video: Path, items: list) -> dict:
    truth = [t for t in read_truth(video.with_suffix(".truth.jsonl")) if t.seq >= WARM_UP_FRAMES]
    observed = [Observed(h.seq, h.belt_x) for h, _, _ in items]
    pairs = match(truth, observed)
    right = dict.fromkeys(RULES, 0)
    for truth_index, item_index in pairs:
        want = expected_bin(truth[truth_index].label)
        prediction = view_predictions(model, items[item_index][1])
        for rule in RULES:
            right[rule] += model.decide(combined(prediction, rule))[0].bin == want
    errors_x = [abs(truth[t].belt_x - observed[i].belt_x) for t, i in pairs]
    errors_seq = [abs(truth[t].seq - observed[i].seq) for t, i in pairs]
    return {
        "truth": len(truth), "published": len(items), "matched": len(pairs), "right_bin": right,
        "belt_x_error_max": max(errors_x, default=0.0), "seq_error_max": max(errors_seq, default=0),
    }  # fmt: skip


def worker_rate(url: str, model_dir: Path, bodies: list[tuple[dict, bytes]]) -> float:
    """Decisions/s of one worker draining a queue pre-filled with these messages."""
    line = f"bench-items-{uuid.uuid4().hex[:6]}"
    connection = connect(url)
    channel = connection.channel()
    declare_line(channel, line)
    for index, (headers, body) in enumerate(bodies):
        table = {**headers, "line_id": line, "captured_at_ns": time.time_ns()}
        properties = pika.BasicProperties(
            content_type="image/jpeg", headers=table, message_id=f"{line}-{index}"
        )
        channel.basic_publish(
            FRAMES_EXCHANGE, frames_routing_key(line, headers["camera_id"]), body, properties
        )
    connection.close()
    tap = Tap.for_decisions(url, line)
    try:
        with WorkerProcess(url, line, model_dir) as worker:
            deadline = time.monotonic() + 300
            while tap.poll(0.1) < len(bodies) and time.monotonic() < deadline:
                worker.check_alive()
    finally:
        tap.close()
        connection = connect(url)
        delete_line(connection.channel(), line)
        connection.close()
    times = sorted(r.received_ns for r in tap.received)
    return (len(times) - 1) / ((times[-1] - times[0]) / 1e9) if len(times) > 1 else float("nan")


def measure(settings: ItemsBenchSettings) -> dict:
    url = settings.amqp_url.get_secret_value()
    model = CascadeModel.load(settings.model)
    clips, all_items = [], []
    with tempfile.TemporaryDirectory() as folder:
        for seed in settings.seeds:
            video, geometry = make_clip(Path(folder), seed, settings)
            line = f"bench-items-{uuid.uuid4().hex[:6]}"
            agent = run_agent(url, line, video, geometry)
            items = take_items(url, line)
            connection = connect(url)
            delete_line(connection.channel(), line)
            connection.close()
            clips.append({"seed": seed, **agent, **score_clip(model, video, items)})
            all_items += items
    messages = [(h.to_amqp(), body) for h, _, body in all_items]
    single = [(h.to_amqp() | {"view_bytes": [len(views[0])]}, views[0]) for h, views, _ in all_items]
    return summarise(
        clips, worker_rate(url, settings.model, messages), worker_rate(url, settings.model, single)
    )


def summarise(clips: list[dict], items_per_s: float, single_views_per_s: float) -> dict:
    frames = sum(c["frames"] for c in clips)
    matched = sum(c["matched"] for c in clips)
    return {
        "clips": clips,
        "agent_kept_up": sum(c["clip_seconds"] for c in clips) / sum(c["agent_seconds"] for c in clips),
        # start-up (imports, model of the empty belt) included: an upper bound of the per-frame cost
        "agent_cpu_ms_per_frame": 1000 * sum(c["cpu_seconds"] for c in clips) / frames,
        "count_error": sum(c["published"] for c in clips) / max(1, sum(c["truth"] for c in clips)) - 1,
        "accuracy": {rule: sum(c["right_bin"][rule] for c in clips) / max(1, matched) for rule in RULES},
        "worker_items_per_s": items_per_s,
        "worker_single_views_per_s": single_views_per_s,
    }


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_cli(ItemsBenchSettings, argv, prog="python -m bench.items")
    report = measure(settings)
    table = Table(title="Items mode, 1280x720 at 30 fps (agent on one core)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("clip time / agent time (1.0: kept up)", f"{report['agent_kept_up']:.3f}")
    table.add_row("agent CPU-ms per frame", f"{report['agent_cpu_ms_per_frame']:.1f}")
    table.add_row("items published / truth - 1", f"{report['count_error']:+.1%}")
    for rule, accuracy in report["accuracy"].items():
        table.add_row(f"right bin per item, {rule}", f"{accuracy:.1%}")
    table.add_row("worker items/s (up to 3 views)", f"{report['worker_items_per_s']:.1f}")
    table.add_row("worker items/s (1 view)", f"{report['worker_single_views_per_s']:.1f}")
    Console(stderr=True).print(table)
    text = json.dumps(report, indent=2)
    if settings.json_out:
        settings.json_out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
