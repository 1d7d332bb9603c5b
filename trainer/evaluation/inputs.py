"""What ``trainer evaluate`` scores and on which images, settled before the model loads.

Loading a model takes seconds (the sha256 of every file, an ONNX Runtime session), so a typo in
``--data`` or a folder named ``biological`` must be reported before it, not after. A label
folder the models do not know is an error rather than a warning: skipping it would score fewer
images than the person meant, and the figures would look just as complete. ``--map`` gives such
a folder a label and ``--ignore`` leaves it out, both on purpose.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sortline.labels import DATA_LABELS
from sortline.manifest import ModelManifest
from sortline_runtime.model import CascadeModel, choose_variant
from trainer.data import dataset
from trainer.data.dataset import DataLayoutError, Sample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelRules:
    """How label folders become labels: their own name, a ``--map`` entry, or left out (``--ignore``)."""

    mapping: Mapping[str, str] = field(default_factory=dict)
    ignore: frozenset[str] = frozenset()

    def label_of(self, folder: str) -> str | None:
        """The label of a folder's images; None for a folder left out or unknown."""
        if folder in self.ignore:
            return None
        label = self.mapping.get(folder, folder)
        return label if label in DATA_LABELS else None


def _unknown_message(unknown: Mapping[Path, list[str]]) -> str:
    """One line: which folders, where, the accepted labels and the two ways out."""
    where = "; ".join(f"{', '.join(names)} in {data_dir}" for data_dir, names in unknown.items())
    names = [name for found in unknown.values() for name in found]
    return (
        f"unknown label folders: {where}; accepted labels: {', '.join(DATA_LABELS)}; "
        f"give a folder a label (--map {names[0]}=LABEL) or leave it out (--ignore {names[-1]})"
    )


def _images_of(data_dir: Path, folder: Path, label: str) -> list[Sample]:
    """A label folder's images, keyed as training keys them so --split val is the same split."""
    images = dataset.images_of(data_dir, folder, label)
    if not images:
        log.warning("label folder %s holds no images (.jpg, .jpeg, .png)", folder)
    return images


def checked_samples(data_dirs: Iterable[Path], rules: LabelRules) -> list[Sample]:
    """Every image to score, after checking each folder exists, is labelled and holds images.

    Raises :class:`DataLayoutError` (one line, exit 2) for a missing folder, any unknown label
    folder (all of them named at once), or a data folder with no labelled images.
    """
    folders = {Path(d): dataset.label_folders(Path(d)) for d in data_dirs}
    unknown = {
        d: names
        for d, subs in folders.items()
        if (names := [s.name for s in subs if s.name not in rules.ignore and rules.label_of(s.name) is None])
    }
    if unknown:
        raise DataLayoutError(_unknown_message(unknown))
    for name in sorted(set(rules.mapping) | rules.ignore):
        if not any(s.name == name for subs in folders.values() for s in subs):
            log.warning("--map/--ignore name %s, which no data folder holds", name)
    return [sample for data_dir, subs in folders.items() for sample in _samples_of(data_dir, subs, rules)]


def _samples_of(data_dir: Path, subs: list[Path], rules: LabelRules) -> list[Sample]:
    """One data folder's labelled images; a folder with no label folder or no image is an error."""
    for sub in subs:
        if sub.name in rules.ignore:
            log.info("leaving out %s (--ignore %s)", sub, sub.name)
    labelled = [(sub, label) for sub in subs if (label := rules.label_of(sub.name)) is not None]
    if not labelled:
        raise DataLayoutError(
            f"data folder {data_dir} has no label folders; expected {data_dir}/<label>/*.jpg "
            f"with label one of {', '.join(DATA_LABELS)}"
        )
    found = [sample for sub, label in labelled for sample in _images_of(data_dir, sub, label)]
    if not found:
        names = ", ".join(sub.name for sub, _ in labelled)
        raise DataLayoutError(f"data folder {data_dir} holds no images (.jpg, .jpeg, .png) in {names}")
    return found


def chosen_split(samples: list[Sample], split: str, fraction: float) -> list[Sample]:
    """The images of ``--split``; an empty validation split is an error, not a report on nothing."""
    if split != "val":
        return samples
    _, val = dataset.split(samples, fraction)
    if not val:
        raise DataLayoutError(
            f"--split val holds no images at validation share {fraction}: each <data folder>/<label> "
            "needs two images or more; use --split all"
        )
    return val


def served_files(manifest: ModelManifest) -> dict[str, str]:
    """The file a worker with ``--variant auto`` serves, per device, as the worker chooses it."""
    files = {}
    for device, providers in (("cpu", ["CPUExecutionProvider"]), ("gpu", ["CUDAExecutionProvider"])):
        chosen = choose_variant("auto", manifest, providers)
        files[device] = manifest.variants[chosen].file if chosen else manifest.onnx_file
    return files


def scored_file(model: CascadeModel) -> str:
    """The ONNX file this run scored (the manifest's main file, or the variant's)."""
    manifest = model.manifest
    return manifest.variants[model.variant].file if model.variant else manifest.onnx_file
