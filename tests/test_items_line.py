"""Items mode end to end on the real RabbitMQ: a generated belt clip through ``camera-agent --mode
items`` and a classifier worker: one decision per item, with where and when it is; and the live
view in a real browser (Chromium), showing frames and each decided item with its bin."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sortline.belt import ClipGeometry, clip_geometry_path, read_truth
from sortline_dev.belt.clip import generate_clip
from sortline_dev.belt.settings import BeltClipSettings
from sortline_dev.processes import AgentProcess, WorkerProcess, free_port
from sortline_dev.taps import decisions_tap
from tests.support.browser import chromium

pytestmark = pytest.mark.broker

#: The site as the camera knows it: 1 s from the trigger line to the ejectors.
SITE = "belt_speed_m_s = 0.5\npixels_per_metre = 400\nejector_distance_m = 0.5\n"
#: How soon after its decision a decided item must show on the page.
SHOWN_WITHIN_S = 1.0
#: The page's items (id, bin shown), its status line and its image's width, read in one call.
PAGE_STATE = """return [
  [...document.querySelectorAll('#items tr[data-item]')]
    .map(row => [row.dataset.item, row.querySelector('.bin').textContent]),
  document.getElementById('status').textContent,
  document.getElementById('belt').naturalWidth];"""


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, ClipGeometry]:
    folder = tmp_path_factory.mktemp("items-clip")
    settings = BeltClipSettings(out=folder / "belt.mp4", width=640, height=360, seconds=8.0,
                                items_per_second=1.5, seed=21)  # fmt: skip
    generate_clip(settings)
    return settings.out, ClipGeometry.model_validate_json(clip_geometry_path(settings.out).read_text())


def agent_for(amqp_url, line_id, video: Path, geometry: ClipGeometry, site: Path, *flags) -> AgentProcess:
    roi = f"{geometry.roi.x},{geometry.roi.y},{geometry.roi.w},{geometry.roi.h}"
    return AgentProcess(amqp_url, line_id, video, "--mode", "items", "--roi", roi, "--site", str(site),
                        "--belt-direction", geometry.direction.value, *flags, log_level="INFO")  # fmt: skip


def watch_page(driver, url: str, until: float) -> tuple[dict[str, tuple[str, float]], set[str], int]:
    """Polling the page until ``until``: item id -> (bin shown, when first shown), the status lines
    seen, and the widest frame the page's image showed."""
    driver.get(url)
    shown: dict[str, tuple[str, float]] = {}
    statuses, width = set(), 0
    while time.monotonic() < until:
        rows, status, frame_width = driver.execute_script(PAGE_STATE)  # one call: the page redraws often
        for item, bin_shown in rows:
            shown.setdefault(item, (bin_shown, time.time()))
        statuses.add(status)
        width = max(width, frame_width)
        time.sleep(0.05)
    return shown, statuses, width


def test_each_item_is_decided_once_with_where_and_when_and_shows_live(
    amqp_url, line_id, tiny_model_dir, clip, tmp_path
):
    video, geometry = clip
    site = tmp_path / "site.toml"
    site.write_text(SITE)
    port = free_port()
    agent = agent_for(amqp_url, line_id, video, geometry, site, "--live-port", str(port))
    with decisions_tap(amqp_url, line_id) as tap, WorkerProcess(amqp_url, line_id, tiny_model_dir) as worker:
        worker.wait_ready(timeout=60)
        with agent, chromium() as browser:
            agent.wait_ready(timeout=60)
            shown, statuses, image_width = watch_page(
                browser, f"http://127.0.0.1:{port}/", time.monotonic() + 9
            )
            assert agent.wait(timeout=30) == 0, agent.output()[-2000:]
        tap.settle(quiet=1.0)
    decisions = [(received, received.decision()) for received in tap.received]
    items = [d for _, d in decisions]
    # one decision per item, each with where and when
    assert len({d.item_id for d in items}) == len(items) > 0
    for d in items:
        assert d.bbox and 0 <= d.belt_x <= 1 and d.belt_span[0] <= d.belt_x <= d.belt_span[1]
        assert 1 <= d.views <= 3 and d.eject_at_ns - d.captured_at_ns == 1_000_000_000
    # every item the agent published was decided, once
    assert f"published {len(items)} frames" in agent.output()
    # against the clip's truth: each item where and when the truth says. The count itself is the
    # item pipeline's accuracy (tests/test_items_clips.py, docs/belt.md): here one miss or one extra
    # at most, so that a loss between camera and decision cannot hide.
    truth = [t for t in read_truth(video.with_suffix(".truth.jsonl")) if t.seq >= 15]  # 15: warm-up
    matched = {}
    for item in truth:
        nearest = min(items, key=lambda d: abs(d.seq - item.seq) + abs(d.belt_x - item.belt_x) * 100)
        if abs(nearest.seq - item.seq) <= 2 and abs(nearest.belt_x - item.belt_x) <= 0.03:
            matched[item.item_id] = nearest.item_id
    assert len(matched) >= len(truth) - 1 and len(set(matched.values())) == len(matched)
    assert len(items) - len(matched) <= 1, sorted((d.seq, round(d.belt_x, 3)) for d in items)
    # the live view: frames arrive, and every decided item shows with its bin within a second
    rates = [float(status.split()[0]) for status in statuses if status.endswith("decided lately")]
    assert image_width > 0 and max(rates) > 20  # the clip plays at 30 fps
    for received, d in decisions:
        bin_shown, at = shown[d.item_id]
        assert bin_shown == d.bin and at - received.received_ns / 1e9 <= SHOWN_WITHIN_S
