"""The trainer's validation split: deterministic, stratified, independent of where the data lives."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainer.data.dataset import DataLayoutError, scan, split, validation_count


def make_layout(root: Path, counts: dict[str, int]) -> Path:
    """Empty image files in ``root/<label>/``; the split never decodes them."""
    for label, n in counts.items():
        (root / label).mkdir(parents=True)
        for i in range(n):
            (root / label / f"{label}{i}.jpg").write_bytes(b"")
    return root


COUNTS = {"organic": 40, "glass": 100, "metal": 7, "trash": 1}


def test_split_is_stratified_per_label(tmp_path: Path) -> None:
    samples = scan([make_layout(tmp_path / "ds", COUNTS)])
    _, val = split(samples, 0.2)
    per_label = {label: sum(s.label == label for s in val) for label in COUNTS}
    assert per_label == {"organic": 8, "glass": 20, "metal": 1, "trash": 0}


def test_split_is_deterministic_and_order_independent(tmp_path: Path) -> None:
    samples = scan([make_layout(tmp_path / "ds", COUNTS)])
    _, val_a = split(samples, 0.15)
    shuffled = list(samples)
    random.Random(1).shuffle(shuffled)
    _, val_b = split(shuffled, 0.15)
    assert {s.key for s in val_a} == {s.key for s in val_b}
    train, val = split(samples, 0.15)
    assert not {s.key for s in train} & {s.key for s in val}
    assert len(train) + len(val) == len(samples)


def test_split_depends_only_on_folder_name_not_location(tmp_path: Path) -> None:
    one = scan([make_layout(tmp_path / "a" / "trashnet", COUNTS)])
    two = scan([make_layout(tmp_path / "b" / "deeper" / "trashnet", COUNTS)])
    assert {s.key for s in split(one, 0.15)[1]} == {s.key for s in split(two, 0.15)[1]}
    assert all(s.key.startswith("trashnet/") for s in one)


def test_split_changes_with_folder_name(tmp_path: Path) -> None:
    """The hash really uses the key: another dataset name picks other files."""
    one = scan([make_layout(tmp_path / "alpha", {"glass": 200})])
    two = scan([make_layout(tmp_path / "beta", {"glass": 200})])
    names = lambda ss: {s.path.name for s in split(ss, 0.15)[1]}  # noqa: E731
    assert names(one) != names(two)


def test_unknown_label_folder_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_layout(tmp_path / "ds", {"glass": 3, "lithium": 2})
    samples = scan([root])
    assert {s.label for s in samples} == {"glass"}
    assert "lithium" in caplog.text


def test_missing_or_empty_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataLayoutError, match="does not exist"):
        scan([tmp_path / "nope"])
    (tmp_path / "empty" / "shoes").mkdir(parents=True)
    with pytest.raises(DataLayoutError, match="no label folders"):
        scan([tmp_path / "empty"])


@given(n=st.integers(0, 10_000), fraction=st.floats(0.0, 0.99))
def test_validation_count_bounds(n: int, fraction: float) -> None:
    count = validation_count(n, fraction)
    assert 0 <= count <= max(0, n - 1)
    if n >= 2 and fraction > 0:
        assert count >= 1
        assert abs(count - n * fraction) <= 1.0 or count == n - 1
