"""A model registry on disk: numbered versions, and pointers to the one serving and the one on trial.

    REGISTRY/
      versions/0001-lite0-ft-20261124-bed2a8a7/   manifest.json, model.onnx, variants,
                                                  evaluation/ (its trainer evaluate report)
      versions/0002-.../
      current   -> versions/0002-...              what workers serve
      candidate -> versions/0003-...              what workers try in shadow (optional)
      history.jsonl                               every pointer change: what, from, to, when, why,
                                                  and the gate's figures of a promotion

A version is written once (copied into a hidden staging folder, verified against its manifest's
sha256, then renamed into place) and never changed. A pointer is a symbolic link replaced with
one ``rename``: a worker resolving it sees the old version or the new one, never a half-written
folder. Rollback moves ``current`` back along the history. Old versions beyond a retention count
are removed, never one a pointer names.

Workers resolve ``current`` each time they load (``resolve_model_dir``), so one started, or
reconnected, after a promotion serves what the registry says, event or no event.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sortline.manifest import ModelManifest, load_manifest, variant_path

CURRENT = "current"
CANDIDATE = "candidate"
POINTERS = (CURRENT, CANDIDATE)
#: A version's evaluation report (``trainer publish --evaluation``), kept beside its model files.
EVALUATION = "evaluation"
_NUMBERED = re.compile(r"^(\d{4,})-")


class RegistryError(ValueError):
    """A registry operation that cannot be done (no such version, nothing to roll back to)."""


@dataclass(frozen=True)
class Version:
    number: int
    path: Path
    manifest: ModelManifest

    @property
    def name(self) -> str:
        return self.path.name


def is_registry(path: Path) -> bool:
    return (path / "versions").is_dir()


def resolve_model_dir(path: Path, pointer: str = CURRENT) -> Path:
    """The model directory ``path`` stands for: itself, or a registry's ``pointer`` version."""
    if not is_registry(path):
        return path
    target = path / pointer
    if not target.exists():
        raise RegistryError(f"registry {path} has no {pointer} version yet")
    return target.resolve()


def verified_manifest(model_dir: Path) -> ModelManifest:
    """The manifest, after checking the main file and every variant against their sha256."""
    manifest = load_manifest(model_dir, verify=True)
    for name in manifest.variants:
        variant_path(model_dir, manifest, name, verify=True)
    return manifest


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.versions_dir = root / "versions"

    def versions(self) -> list[Version]:
        """Every version, oldest first."""
        if not self.versions_dir.is_dir():
            return []
        found = []
        for path in self.versions_dir.iterdir():
            if (match := _NUMBERED.match(path.name)) and path.is_dir():
                found.append(Version(int(match.group(1)), path, load_manifest(path, verify=False)))
        return sorted(found, key=lambda version: version.number)

    def find(self, name: str) -> Version:
        """A version by its folder name, its number, or its model version string."""
        for version in self.versions():
            if name in (version.name, str(version.number), f"{version.number:04d}", version.manifest.version):
                return version
        raise RegistryError(f"no version {name!r} in {self.root}")

    def pointed(self, pointer: str) -> Version | None:
        link = self.root / pointer
        if not link.is_symlink():
            return None
        return self.find(Path(os.readlink(link)).name)

    def publish(self, source: Path, evaluation: Path | None = None) -> Version:
        """Copy a model directory in as the next numbered version, verified in the copy; with
        ``evaluation`` (a ``trainer evaluate --report`` folder), that report goes in beside it."""
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        number = max((v.number for v in self.versions()), default=0) + 1
        staging = self.root / f".staging-{uuid.uuid4().hex[:8]}"
        shutil.copytree(source, staging)
        if evaluation is not None:
            shutil.copytree(evaluation, staging / EVALUATION, dirs_exist_ok=True)
        try:
            manifest = verified_manifest(staging)
        except Exception:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        target = self.versions_dir / f"{number:04d}-{manifest.version}"
        staging.rename(target)
        self._log("publish", None, target.name)
        return Version(number, target, manifest)

    def point(self, pointer: str, version: Version | None, why: str, details: dict | None = None) -> None:
        """Swap ``pointer`` to ``version`` (None: remove it) with one rename; ``details`` (the gate's
        figures) are kept in the history entry."""
        link = self.root / pointer
        before = self.pointed(pointer)
        if version is None:
            link.unlink(missing_ok=True)
        else:
            temporary = self.root / f".{pointer}-{uuid.uuid4().hex[:8]}"
            temporary.symlink_to(Path("versions") / version.name)
            os.replace(temporary, link)
        self._log(why, before.name if before else None, version.name if version else None, pointer, details)

    def previous_current(self) -> Version:
        """What ``current`` pointed at before it pointed at what it does now."""
        now = self.pointed(CURRENT)
        for entry in reversed(self.history()):
            if entry["pointer"] == CURRENT and entry["to"] == (now.name if now else None) and entry["from"]:
                return self.find(entry["from"])
        raise RegistryError(f"{self.root}: current has no earlier version to roll back to")

    def history(self) -> list[dict]:
        path = self.root / "history.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def retain(self, keep: int) -> list[str]:
        """Remove the oldest versions beyond ``keep``, never one a pointer names; the names removed."""
        named = {v.name for pointer in POINTERS if (v := self.pointed(pointer))}
        versions = self.versions()
        removable = [v for v in versions[: max(0, len(versions) - keep)] if v.name not in named]
        for version in removable:
            shutil.rmtree(version.path)
        return [version.name for version in removable]

    def _log(
        self, action: str, before: str | None, after: str | None, pointer: str | None = None,
        details: dict | None = None,
    ) -> None:  # fmt: skip
        entry = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "action": action,
                 "pointer": pointer, "from": before, "to": after}  # fmt: skip
        if details:
            entry["details"] = details
        with (self.root / "history.jsonl").open("a") as log:
            log.write(json.dumps(entry) + "\n")
