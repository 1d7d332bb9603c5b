"""The model registry and its commands: numbered versions, atomic pointers, the gate, rollback."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from sortline.labels import RESIDUAL
from sortline.manifest import ModelIntegrityError
from sortline.registry import (
    CANDIDATE,
    CURRENT,
    ModelRegistry,
    RegistryError,
    resolve_model_dir,
    verified_manifest,
)
from sortline_runtime.imaging import resize_for_model, to_model_input
from sortline_runtime.model import CascadeModel
from tests.tiny_model import write_tiny_model
from trainer.cli import main as trainer_main


def test_versions_are_numbered_verified_copies(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    first = registry.publish(write_tiny_model(tmp_path / "a", version="tiny-a"))
    second = registry.publish(write_tiny_model(tmp_path / "b", version="tiny-b", seed=1))
    assert [v.name for v in registry.versions()] == ["0001-tiny-a", "0002-tiny-b"]
    assert registry.find("2") == second and registry.find("tiny-a").path == first.path
    tampered = write_tiny_model(tmp_path / "c", version="tiny-c")
    (tampered / "model.onnx").write_bytes(b"not the model")
    with pytest.raises(ModelIntegrityError):
        registry.publish(tampered)
    assert len(registry.versions()) == 2 and not list(registry.root.glob(".staging-*"))


def test_a_pointer_is_one_rename_and_rollback_follows_the_history(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    versions = [registry.publish(write_tiny_model(tmp_path / f"m{i}", version=f"tiny-{i}")) for i in range(3)]
    with pytest.raises(RegistryError, match="no current"):
        resolve_model_dir(registry.root)
    for version in versions:
        registry.point(CURRENT, version, "promote")
    assert os.readlink(registry.root / CURRENT) == "versions/0003-tiny-2"
    assert resolve_model_dir(registry.root) == versions[2].path.resolve()
    assert registry.previous_current() == versions[1]
    registry.point(CURRENT, registry.previous_current(), "rollback")
    assert registry.pointed(CURRENT) == versions[1]
    assert [e["action"] for e in registry.history()][-2:] == ["promote", "rollback"]
    assert resolve_model_dir(tmp_path / "m0") == tmp_path / "m0"  # a plain model directory


def test_retention_never_removes_a_version_a_pointer_names(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    versions = [registry.publish(write_tiny_model(tmp_path / f"m{i}", version=f"tiny-{i}")) for i in range(4)]
    registry.point(CURRENT, versions[0], "promote")
    assert registry.retain(keep=2) == ["0002-tiny-1"]
    assert [v.name for v in registry.versions()] == ["0001-tiny-0", "0003-tiny-2", "0004-tiny-3"]


def gate_set(folder: Path, model_dir: Path, count: int = 80) -> Path:
    """Images of random colours labelled with what the model in ``model_dir`` decides: that model
    scores 100% on them, any other model less."""
    model = CascadeModel.load(model_dir)
    spec = model.manifest.input
    rng = np.random.default_rng(3)
    for index in range(count):
        image = np.full((48, 48, 3), rng.integers(0, 256, 3), dtype=np.uint8)
        decision = model.decide(model.predict(to_model_input([resize_for_model(image, spec)], spec)))[0]
        label = decision.material if decision.bin == RESIDUAL else decision.bin
        (folder / label).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / label / f"{index}.png"), image)
    return folder


def test_the_gate_refuses_a_worse_model_and_passes_the_same_one_again(tmp_path: Path, capsys) -> None:
    good, worse = (
        write_tiny_model(tmp_path / "good", version="tiny-good"),
        write_tiny_model(tmp_path / "worse", version="tiny-worse", seed=5),
    )
    again = write_tiny_model(tmp_path / "again", version="tiny-again")  # the good weights, new version
    gate = gate_set(tmp_path / "gate", good)
    registry = tmp_path / "registry"
    common = ["--registry", str(registry), "--no-announce"]
    for model in (good, worse, again):
        assert trainer_main(["publish", "--model", str(model), "--registry", str(registry)]) == 0
    assert trainer_main(["promote", *common, "--model-version", "1", "--force"]) == 0
    gated = [*common, "--gate-data", str(gate), "--gate-min-bin-items", "5"]
    assert trainer_main(["promote", *gated, "--model-version", "2"]) == 2
    refusal = capsys.readouterr().err
    assert "0002-tiny-worse refused" in refusal and "candidate" in refusal and "current" in refusal
    assert ModelRegistry(registry).pointed(CURRENT).name == "0001-tiny-good"
    assert trainer_main(["promote", *gated, "--model-version", "3"]) == 0
    assert ModelRegistry(registry).pointed(CURRENT).name == "0003-tiny-again"
    passed = ModelRegistry(registry).history()[-1]["details"]["gate"]  # the figures it passed on, kept
    assert passed["against"] == "0001-tiny-good"
    assert (
        passed["candidate"]["recyclable_material_accuracy"]
        == passed["current"]["recyclable_material_accuracy"]
    )
    assert trainer_main(["rollback", "--registry", str(registry), "--no-announce"]) == 0
    assert ModelRegistry(registry).pointed(CURRENT).name == "0001-tiny-good"


def test_promote_names_its_two_ways_and_their_flags() -> None:
    assert (
        trainer_main(["promote", "--registry", "r", "--model-version", "1"]) == 2
    )  # no gate data, no --force
    assert trainer_main(["promote", "--model", "m"]) == 2


def test_a_version_keeps_its_evaluation_and_shadow_names_the_candidate(tmp_path: Path) -> None:
    report = tmp_path / "report"
    report.mkdir()
    (report / "summary.md").write_text("# figures\n")
    registry = tmp_path / "registry"
    model = write_tiny_model(tmp_path / "m", version="tiny-m")
    publish = ["publish", "--model", str(model), "--registry", str(registry)]
    assert trainer_main([*publish, "--evaluation", str(report)]) == 0
    assert trainer_main(publish) == 0
    first = ModelRegistry(registry).find("1")
    assert (first.path / "evaluation" / "summary.md").read_text() == "# figures\n"
    assert verified_manifest(first.path).version == "tiny-m"  # the report does not upset the check
    shadow = ["shadow", "--registry", str(registry), "--no-announce"]
    assert trainer_main([*shadow, "--model-version", "2"]) == 0
    assert ModelRegistry(registry).pointed(CANDIDATE).name == "0002-tiny-m"
    assert trainer_main(shadow) == 0  # no version: the trial is over
    assert ModelRegistry(registry).pointed(CANDIDATE) is None
