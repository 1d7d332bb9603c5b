"""The item pipeline's pure parts: trigger line, belt coordinates, crops, splitting, belt model, settings."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from camera_agent.items.annotate import draw_items, trigger_segment
from camera_agent.items.background import BeltBackground
from camera_agent.items.crops import CropSelector
from camera_agent.items.detect import clean, find_blobs, split_touching
from camera_agent.items.pipeline import ItemsPipeline, TrackView
from camera_agent.items.settings import GeometryFileError, ItemsSettings, SiteGeometry, load_site_geometry
from camera_agent.items.trigger import crossed, crossing_time_ns
from sortline.belt import BeltFrame, Direction, Roi
from sortline_dev.belt.render import orient, orient_box

ROI = Roi(x=100, y=50, w=400, h=200)


@pytest.mark.parametrize(
    ("previous", "now", "expected"),
    [(0.4, 0.6, True), (0.4, 0.5, True), (0.5, 0.6, False), (0.6, 0.4, False), (0.1, 0.2, False)],
)
def test_the_line_is_crossed_once_from_before_to_on_or_past_it(previous, now, expected) -> None:
    assert crossed(previous, now, trigger=0.5) is expected


def test_the_crossing_instant_is_interpolated_between_observations() -> None:
    assert crossing_time_ns(0.4, 1_000, 0.6, 3_000, trigger=0.5) == 2_000
    assert crossing_time_ns(0.5, 1_000, 0.5, 3_000, trigger=0.5) == 3_000  # no motion: the later frame


@pytest.mark.parametrize(
    ("direction", "point", "along", "across"),
    [
        (Direction.TOP_TO_BOTTOM, (200, 100), 0.25, 0.25),
        (Direction.BOTTOM_TO_TOP, (200, 100), 0.75, 0.25),
        (Direction.LEFT_TO_RIGHT, (200, 100), 0.25, 0.25),
        (Direction.RIGHT_TO_LEFT, (200, 100), 0.75, 0.25),
    ],
)
def test_along_runs_with_the_belt_and_belt_x_follows_the_image_axis(direction, point, along, across) -> None:
    belt = BeltFrame(ROI, direction)
    assert belt.along(*point) == pytest.approx(along)
    assert belt.across(*point) == pytest.approx(across)


def test_the_trigger_line_is_drawn_where_along_equals_trigger() -> None:
    for direction in Direction:
        belt = BeltFrame(ROI, direction)
        (x0, y0), (x1, y1) = trigger_segment(belt, 0.3)
        assert belt.along((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx(0.3, abs=0.01)


def _frame() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (120, 200, 3), dtype=np.uint8)


def test_crops_prefer_whole_views_and_keep_the_best_k() -> None:
    selector = CropSelector(k=2, margin=0.0)
    frame = _frame()
    selector.offer(frame, 0, (0, 10, 40, 40), sharp=900.0, crowded=False)  # cut by the frame edge
    selector.offer(frame, 3, (50, 10, 40, 40), sharp=10.0, crowded=False)
    selector.offer(frame, 6, (60, 10, 40, 40), sharp=500.0, crowded=False)
    selector.offer(frame, 9, (70, 10, 40, 40), sharp=100.0, crowded=False)
    views = selector.best()
    assert [v.seq for v in views] == [6, 9]
    assert all(v.whole for v in views)
    assert views[0].image.shape == (40, 40, 3)


def test_crops_are_views_from_different_frames_and_crowded_views_count_less() -> None:
    selector = CropSelector(k=2, margin=0.1)
    frame = _frame()
    selector.offer(frame, 10, (50, 10, 40, 40), sharp=100.0, crowded=False)
    selector.offer(
        frame, 11, (52, 10, 40, 40), sharp=90.0, crowded=False
    )  # too close in time: worse, dropped
    selector.offer(frame, 14, (54, 10, 40, 40), sharp=120.0, crowded=True)
    assert [v.seq for v in selector.best()] == [10, 14]
    assert selector.best()[0].image.shape == (48, 48, 3)  # 10% margin on each side


def _touching_discs() -> np.ndarray:
    mask = np.zeros((80, 140), np.uint8)
    cv2.circle(mask, (40, 40), 28, 1, -1)
    cv2.circle(mask, (92, 40), 26, 1, -1)
    return mask


def test_touching_items_are_split_at_their_waist() -> None:
    parts = split_touching(_touching_discs(), min_area=200)
    assert len(parts) == 2
    centres = sorted((p.box[0] + p.box[2]) / 2 for p in parts)
    assert centres == pytest.approx([40, 92], abs=4)


def test_one_convex_item_is_not_split() -> None:
    mask = np.zeros((80, 140), np.uint8)
    cv2.ellipse(mask, (70, 40), (60, 25), 10, 0, 360, 1, -1)
    assert split_touching(mask, min_area=200) == []


def test_blobs_outside_the_size_limits_are_dropped() -> None:
    mask = np.zeros((100, 200), np.uint8)
    cv2.rectangle(mask, (10, 10), (40, 40), 255, -1)
    cv2.rectangle(mask, (100, 10), (102, 12), 255, -1)  # a speck
    blobs = find_blobs(clean(mask, 3), min_area=50, max_area=5000, split=True)
    assert [b.box for b in blobs] == [(10, 10, 41, 41)]


def _belt(seed: int, gain: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.full((90, 160, 3), (50, 55, 60), np.float32)
    return np.clip((base + rng.normal(0, 2.0, base.shape)) * gain, 0, 255).astype(np.uint8)


def _warm(background: BeltBackground) -> None:
    for seed in range(5):
        background.warm_up(_belt(seed))


def test_the_belt_model_finds_items_not_shadows_nor_lighting_drift() -> None:
    background = BeltBackground(warmup_frames=5, learning_rate=0.05, threshold=4.0, min_contrast=14.0)
    _warm(background)
    assert background.ready
    frame = _belt(10, gain=1.12)  # the light drifted by 12%
    frame[20:40, 20:50] = (30, 160, 200)  # an item
    frame[50:70, 80:120] = (frame[50:70, 80:120] * 0.6).astype(np.uint8)  # a shadow: darker, same colour
    mask = clean(background.foreground(frame), 3)
    assert mask[20:40, 20:50].mean() > 250
    assert mask[50:70, 80:120].mean() < 10
    assert mask[75:, :].mean() < 5


def test_the_belt_model_does_not_learn_items() -> None:
    background = BeltBackground(warmup_frames=5, learning_rate=0.05, threshold=4.0, min_contrast=14.0)
    _warm(background)
    for seed in range(20, 40):
        frame = _belt(seed)
        frame[20:40, 20:50] = (30, 160, 200)  # an item that stays put
        background.learn(background.foreground(frame))
    # under the item the model moves only a tenth as fast (a stopped item fades in over minutes)
    assert np.abs(background.mean[30, 30] - (50, 55, 60)).max() < 20
    assert background.mean[80, 150] == pytest.approx((50, 55, 60), abs=3)


def test_an_empty_belt_emits_nothing() -> None:
    pipeline = ItemsPipeline(ItemsSettings(warmup_frames=5), fps=30.0)
    events = [e for seq in range(40) for e in pipeline.process(_belt(seq), seq, seq * 33_000_000)]
    stats = pipeline.finish()
    assert events == []
    assert (stats.frames, stats.warmup_frames, stats.items, stats.lost_before_trigger) == (40, 5, 0, 0)


def test_gaps_in_frame_indices_are_counted_as_skipped() -> None:
    pipeline = ItemsPipeline(ItemsSettings(warmup_frames=2), fps=30.0)
    for seq in (0, 1, 2, 5, 6, 10):
        pipeline.process(_belt(seq), seq, seq * 33_000_000)
    assert pipeline.stats.skipped_frames == 5


def test_settings_are_validated_with_clear_errors() -> None:
    with pytest.raises(ValidationError, match="min_item_area"):
        ItemsSettings(min_item_area=0.3, max_item_area=0.2)
    with pytest.raises(ValidationError, match="trigger"):
        ItemsSettings(trigger=1.5)
    with pytest.raises(ValidationError, match="direction"):
        ItemsSettings(direction="sideways")
    with pytest.raises(ValidationError, match="extra"):
        ItemsSettings(trigger_line=0.5)
    with pytest.raises(ValueError, match="does not fit in a 640x360 frame"):
        ItemsSettings(roi=Roi(x=600, y=0, w=100, h=100)).roi_for(640, 360)
    with pytest.raises(ValueError, match="BGR"):
        ItemsPipeline(ItemsSettings()).process(np.zeros((10, 10), np.uint8), 0, 0)
    pipeline = ItemsPipeline(ItemsSettings())
    pipeline.process(_belt(0), 0, 0)
    with pytest.raises(ValueError, match="frame size changed from 160x90 to 80x90"):
        pipeline.process(_belt(1)[:, :80], 1, 1)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "site.json",
            json.dumps({"belt_speed_m_s": 2.0, "pixels_per_metre": 800, "ejector_distance_m": 1.5}),
        ),
        ("site.yaml", "belt_speed_m_s: 2.0\npixels_per_metre: 800\nejector_distance_m: 1.5\n"),
        ("site.toml", "belt_speed_m_s = 2.0\npixels_per_metre = 800\nejector_distance_m = 1.5\n"),
    ],
)
def test_site_geometry_loads_from_json_yaml_and_toml(tmp_path, name, text) -> None:
    path = tmp_path / name
    path.write_text(text)
    geometry = load_site_geometry(path)
    assert geometry == SiteGeometry(belt_speed_m_s=2.0, pixels_per_metre=800, ejector_distance_m=1.5)
    assert geometry.ejector_delay_s() == pytest.approx(0.75)
    assert geometry.belt_speed_px_s() == pytest.approx(1600)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "a.json",
            '{"belt_speed_m_s": -1, "pixels_per_metre": 800, "ejector_distance_m": 1}',
            "belt_speed_m_s",
        ),
        ("b.json", '{"belt_speed_m_s": 1, "pixels_per_metre": 800}', "ejector_distance_m: Field required"),
        ("c.toml", "belt_speed_m_s = ", "not valid TOML"),
        ("d.yaml", "- 1\n- 2\n", "must hold a mapping"),
        ("e.ini", "x=1", "geometry files are"),
        (
            "f.json",
            '{"belt_speed_m_s": 1, "pixels_per_metre": 800, "ejector_distance_m": 1, "x": 2}',
            "x: Extra",
        ),
    ],
)
def test_bad_site_geometry_says_what_is_wrong(tmp_path, name, text, message) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(GeometryFileError, match=message):
        load_site_geometry(path)
    with pytest.raises(GeometryFileError, match="cannot read"):
        load_site_geometry(tmp_path / "missing.json")


@pytest.mark.parametrize("direction", list(Direction))
def test_the_generator_turns_frames_and_boxes_alike(direction) -> None:
    canonical = np.zeros((60, 100, 3), np.uint8)
    canonical[10:20, 30:45] = 255  # rows 10..19 along, columns 30..44 across
    turned = orient(canonical, direction)
    x, y, w, h = orient_box((10, 30, 10, 15), direction, length=60)
    assert turned[y : y + h, x : x + w].min() == 255
    assert turned.sum() == canonical.sum()


def test_annotation_draws_on_a_copy() -> None:
    frame = np.zeros((120, 200, 3), np.uint8)
    belt = BeltFrame(Roi(x=0, y=0, w=200, h=120), Direction.TOP_TO_BOTTOM)
    drawn = draw_items(frame, [TrackView(3, "run-1", (20, 20, 40, 30))], belt, trigger=0.5, fps=29.5)
    assert frame.max() == 0
    assert drawn.shape == frame.shape
    assert drawn[20, 20:60].max() > 0 and drawn[60, :].max() > 0  # the box and the trigger line
