"""``python -m bench`` in a tiny mode against the real broker: every section measured, numbers positive."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.broker


def test_bench_tiny_run_reports_every_section_with_positive_numbers(amqp_url, tiny_model_dir, tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--model", str(tiny_model_dir), "--frames", "60", "--quick",
         "--batch-sizes", "1,8", "--point-seconds", "0.2", "--latency-seconds", "1.5",
         "--latency-fps", "50", "--naive-seconds", "0.5", "--json-out", str(out)],
        cwd=REPO, env={**os.environ, "AMQP_URL": amqp_url}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads(out.read_text())

    assert document["machine"]["usable_cores"] >= 1
    assert document["machine"]["model_version"] == "tiny-test"
    assert set(document["raw"]["batch_sizes"]) == {"1", "8"}
    assert document["raw"]["best_images_per_s"] > 0
    for section in ("pipeline", "multi_worker"):
        assert document[section]["decisions"] == 60, section
        assert document[section]["decisions_per_s"] > 0, section
        assert set(document[section]["stages"]) >= {"decode", "inference", "publish"}, section
    assert document["multi_worker"]["workers"] == 2
    latency = document["latency"]
    assert latency["decided"] == latency["published"] > 0
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    malformed = document["malformed"]
    assert malformed["valid_frames"] == malformed["malformed_frames"] == 60
    assert malformed["dead_lettered"] == malformed["dead_lettered_expected"] == 60 * malformed["rounds"]
    assert min(malformed["clean_decisions_per_s_each"] + malformed["valid_decisions_per_s_each"]) > 0
    assert len(malformed["pair_ratios"]) == malformed["rounds"]
    ratios = malformed["pair_ratios"]
    assert min(ratios) <= malformed["valid_over_clean_median"] <= max(ratios)
    # /proc counts CPU in 10 ms ticks: a tiny model's 60-frame drain may take none of them.
    assert malformed["cpu_ms_per_valid_clean"] >= 0 and malformed["cpu_ms_per_valid_mixed"] >= 0
    assert document["naive"]["frames_per_s"] > 0
    assert 0.0 <= document["naive"]["stage2_fraction"] <= 1.0
    assert all(value > 0 for value in document["ratios"].values()), document["ratios"]
    assert [t["name"] for t in document["targets"]] == [
        "raw_images_per_s",
        "pipeline_over_raw",
        "pipeline_over_naive",
        "latency_p99_ms",
        "malformed_valid_over_clean",
    ]
    for target in document["targets"]:  # met is the comparison of the measured value with the target
        op, bound = target["target"].split()
        expected = target["value"] >= float(bound) if op == ">=" else target["value"] <= float(bound)
        assert target["met"] is expected, target
    assert "Targets" in result.stderr  # the rich table


def test_bench_help_names_every_section():
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for flag in ("--frames", "--quick", "--json-out", "--model", "--workers-max", "--skip"):
        assert flag in result.stdout
