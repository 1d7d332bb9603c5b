"""The item pipeline on short generated belt clips (made here, with fixed seeds): count, belt_x, seq."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from camera_agent.items.evaluate import RunResult, items_settings_of_clip, run_pipeline
from camera_agent.items.evaluate import main as evaluate_main
from camera_agent.items.pipeline import ItemsPipeline
from camera_agent.items.scoring import Observed, score, within
from sortline.belt import TruthItem, read_truth
from sortline_dev.belt.__main__ import main as generate_main
from sortline_dev.belt.clip import generate_clip
from sortline_dev.belt.settings import BeltClipSettings

SMALL = {"width": 640, "height": 360, "seconds": 7.0, "items_per_second": 2.0}


def _clip(folder: Path, name: str, **overrides) -> tuple[BeltClipSettings, list[TruthItem]]:
    settings = BeltClipSettings(out=folder / f"{name}.mp4", **{**SMALL, **overrides})
    return settings, generate_clip(settings)


def _scored(settings: BeltClipSettings, result: RunResult) -> dict:
    observed = [Observed(e.seq, e.belt_x) for e in result.events]
    truth, observed = within(read_truth(settings.truth_path()), observed, result.stats.warmup_frames,
                             result.captured - 3)  # fmt: skip
    return score(truth, observed)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("belt")


APART = [(7, "top-to-bottom"), (8, "right-to-left"), (9, "bottom-to-top")]


@pytest.fixture(scope="module")
def apart_runs(clips) -> list[tuple[BeltClipSettings, RunResult, dict]]:
    runs = []
    for seed, direction in APART:
        settings, truth = _clip(clips, f"apart-{seed}", seed=seed, direction=direction)
        assert len(truth) >= 6
        result = run_pipeline(settings.out, items_settings_of_clip(settings.out), settings.fps)
        runs.append((settings, result, _scored(settings, result)))
    return runs


def test_items_apart_are_counted_where_and_when_they_cross(apart_runs) -> None:
    """belt_x within 0.03 and seq within 2 frames; in the third clip one item is seen as two pieces
    (below), whose centres cross the line a few frames from the item's, so there only on average."""
    for index, (_, result, figures) in enumerate(apart_runs):
        assert figures["belt_x_err_max"] <= 0.03
        assert figures["seq_err_max"] <= 2 if index < 2 else figures["seq_err_mean"] <= 1
        ids = [e.item_id for e in result.events]
        assert len(ids) == len(set(ids))
        for event in result.events:
            assert 1 <= len(event.crops) <= 3
            assert all(c.whole and c.image.size for c in event.crops)
            assert event.crossed_at_ns <= event.captured_at_ns


def test_items_apart_are_counted_once(apart_runs) -> None:
    """Exact on two clips; on the third one item whose dark middle the belt model cannot see is
    counted as its two bright ends (docs/belt.md)."""
    counts = [(f["events"], f["truth_items"]) for _, _, f in apart_runs]
    assert counts[0][0] == counts[0][1] and counts[1][0] == counts[1][1]
    assert sum(f["missed"] for _, _, f in apart_runs) <= 1
    assert sum(f["extra"] for _, _, f in apart_runs) <= 1


def test_touching_items_are_counted_without_double_counts(clips) -> None:
    settings, truth = _clip(clips, "touching", seed=11, touching=0.35)
    assert sum(t.touching for t in truth) >= 4
    figures = _scored(
        settings, run_pipeline(settings.out, items_settings_of_clip(settings.out), settings.fps)
    )
    assert figures["duplicates"] == 0
    assert abs(figures["count_error_pct"]) <= 20  # a floor against regressions; docs/belt.md has the figures


@pytest.mark.xfail(
    reason="touching pairs without a waist or notches stay one blob (docs/belt.md)", strict=False
)
def test_touching_items_are_counted_within_two_percent(clips) -> None:
    settings = BeltClipSettings(out=clips / "touching.mp4", **SMALL, seed=11, touching=0.35)
    if not settings.out.exists():
        generate_clip(settings)
    figures = _scored(
        settings, run_pipeline(settings.out, items_settings_of_clip(settings.out), settings.fps)
    )
    assert abs(figures["count_error_pct"]) <= 2


def test_a_busy_camera_box_skipping_every_other_frame_sees_what_it_sees_at_full_rate(clips) -> None:
    settings, _ = _clip(clips, "skips", seed=12, seconds=6.0)
    items = items_settings_of_clip(settings.out)
    full = run_pipeline(settings.out, items, settings.fps)
    pipeline = ItemsPipeline(items, settings.fps, id_prefix="skip")
    capture = cv2.VideoCapture(str(settings.out))
    events, seq = [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if seq % 2 == 0:
            events += pipeline.process(frame, seq, round(seq / settings.fps * 1e9))
        seq += 1
    stats = pipeline.finish()
    assert stats.skipped_frames == (seq - 1) // 2
    assert len(events) == len(full.events)
    for halved, every in zip(events, full.events, strict=True):
        assert abs(halved.seq - every.seq) <= 2
        assert abs(halved.belt_x - every.belt_x) <= 0.03


def test_the_clis_generate_and_evaluate_a_clip(tmp_path, capsys) -> None:
    out = tmp_path / "cli.mp4"
    args = ["--out", str(out), "--width", "320", "--height", "180", "--seconds", "4", "--seed", "3"]
    assert generate_main(args) == 0
    assert out.stat().st_size > 0 and out.with_suffix(".truth.jsonl").exists()
    assert (
        evaluate_main([str(out), str(out.with_suffix(".truth.jsonl")), "--annotate", str(tmp_path / "a.mp4")])
        == 0
    )
    report = capsys.readouterr().out.strip().splitlines()[-1]
    assert '"truth_items"' in report and '"cpu_ms_per_frame"' in report
    assert (tmp_path / "a.mp4").stat().st_size > 0


def test_bad_generator_flags_exit_2_and_say_why(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        generate_main(["--out", str(tmp_path / "x.mp4"), "--min-size", "0.3", "--max-size", "0.2"])
    assert stop.value.code == 2
    assert "min-size 0.3 is larger than max-size 0.2" in capsys.readouterr().err


def test_an_empty_moving_belt_with_stains_and_drifting_light_emits_nothing(clips) -> None:
    settings, truth = _clip(clips, "empty", seed=13, items_per_second=0.0, light_drift=0.3, seconds=8.0)
    assert truth == []
    result = run_pipeline(settings.out, items_settings_of_clip(settings.out), settings.fps)
    assert result.events == []
    assert result.stats.items == 0
