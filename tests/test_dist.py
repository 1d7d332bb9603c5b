"""``make dist``: the wheel an edge box installs without a checkout, the default model inside, every
command there; installed in a fresh virtualenv, the worker finds and verifies its model."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "default"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    made = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), "dist", f"VENV={sys.prefix}", f"DIST={dist}"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    (built,) = dist.glob("sortline-*.whl")
    assert not (REPO / "build").exists(), "make dist leaves no build folder in the tree"
    return built


def test_the_wheel_holds_every_command_and_the_default_model(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = archive.read(entry_points).decode()
        manifest = json.loads(archive.read("models/default/manifest.json"))
        files = [manifest["onnx_file"], *(variant["file"] for variant in manifest["variants"].values())]
        for name in files:
            digest = hashlib.sha256(archive.read(f"models/default/{name}")).hexdigest()
            assert digest == _sha256(MODEL / name), name
    commands = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert all(f"{command} = " in scripts for command in commands)
    assert {"sortline_tools/tail.py", "classifier_worker/cli.py", "camera_agent/cli.py"} <= names
    assert not [n for n in names if n.startswith(("tests/", "docs/", "deploy/", "samples/"))]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_installed_without_a_checkout_the_worker_serves_the_model_it_carries(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "edge"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = [str(venv / "bin" / "pip"), "install", "--quiet", "--no-index", "--no-deps", str(wheel)]
    subprocess.run(install, check=True, timeout=300)
    # The dependencies come from this environment (an edge box gets them from `make wheelhouse`);
    # Sortline itself only from the wheel, not from this checkout.
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (site / "test-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    probe = (
        "from sortline_runtime.model import DEFAULT_MODEL_DIR, CascadeModel\n"
        "model = CascadeModel.load(DEFAULT_MODEL_DIR)\n"  # checks every sha256 of the manifest
        "print(DEFAULT_MODEL_DIR.resolve(), model.version)"
    )
    loaded = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    where, version = loaded.stdout.split()
    assert (
        Path(where).is_relative_to(venv)
        and version == json.loads((MODEL / "manifest.json").read_text())["version"]
    )
    for command in ("classifier-worker", "camera-agent", "ejector-bridge", "sortline"):
        ran = subprocess.run(
            [str(venv / "bin" / command), "--help"], cwd=tmp_path, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert ran.returncode == 0 and "usage:" in ran.stdout, (command, ran.stderr)
