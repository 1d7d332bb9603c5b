"""The ``trainer train --mode finetune`` pipeline: split, cache, fine-tune, then finalize.

Three deterministic parts of the data: the validation split (``dataset.split``, untouched, only
for reporting), a calibration subset carved from the training side with an independent hash
(model selection, early stopping and the cascade thresholds), and the rest for training.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sortline.manifest import InputSpec, ModelManifest
from trainer import checkpoint, dataset, imagecache
from trainer.backbone import create_backbone
from trainer.distributed import DistInfo, barrier, init_from_env, select_device, shutdown
from trainer.finetune import FinetuneConfig, TrainData, Trainer, build_net
from trainer.heads import HeadConfig
from trainer.qat import QatConfig, quantization_aware_finetune

log = logging.getLogger(__name__)

CALIBRATION_SALT = "calibration/"


@dataclass(frozen=True)
class FinetuneRun:
    """Everything ``trainer train --mode finetune`` was asked to do."""

    data: list[Path]
    out: Path
    command: str
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    val_fraction: float = 0.15
    calib_fraction: float = 0.1
    run_dir: Path = Path("runs/finetune")
    cache_dir: Path = imagecache.DEFAULT_CACHE_DIR
    resume: bool = False
    device: str = "auto"
    threads: int = 0
    workers: int = 2
    int8: bool = True
    fp16: bool = True
    refit: HeadConfig | None = field(default_factory=HeadConfig)
    mirror_average: bool = True
    speed_seconds: float = 4.0
    qat: QatConfig | None = field(default_factory=QatConfig)  # before the heads' refit; None = off


@dataclass(frozen=True)
class Splits:
    """The three parts of the data."""

    fit: list[dataset.Sample]
    calib: list[dataset.Sample]
    val: list[dataset.Sample]


def make_splits(data: list[Path], val_fraction: float, calib_fraction: float) -> Splits:
    """Validation as before; calibration carved from the training side with a salted hash."""
    train, val = dataset.split(dataset.scan(data), val_fraction)
    fit, calib = dataset.split(train, calib_fraction, salt=CALIBRATION_SALT)
    log.info("%d fit, %d calibration, %d validation images", len(fit), len(calib), len(val))
    return Splits(fit, calib, val)


def _train_data(images: imagecache.ImageSet, keys: set[str]) -> TrainData:
    """The cached rows whose sample key is in ``keys``."""
    rows = [i for i, s in enumerate(images.samples) if s.key in keys]
    return TrainData(images.images[rows], [images.samples[i].label for i in rows])


def train_model(run: FinetuneRun, splits: Splits, info: DistInfo, device: torch.device) -> Trainer:
    """Decode once, fine-tune (resuming if asked), and return the trainer holding the best weights."""
    spec = InputSpec()
    if info.is_main:  # rank 0 decodes; the others wait and then map the finished cache file
        imagecache.load(splits.fit + splits.calib, spec, run.cache_dir, workers=run.workers)
    barrier(info)
    cached = imagecache.load(splits.fit + splits.calib, spec, run.cache_dir, workers=run.workers)
    fit = _train_data(cached, {s.key for s in splits.fit})
    calib = _train_data(cached, {s.key for s in splits.calib})
    torch.manual_seed(run.finetune.seed)
    net = build_net(create_backbone(), run.finetune.dropout)
    trainer = Trainer(net, run.finetune, spec, fit, calib, run.run_dir, info, device)
    state = checkpoint.load(run.run_dir / checkpoint.LAST) if run.resume else None
    if state is not None:
        trainer.restore(state)
    trainer.fit()
    if run.qat is not None and info.is_main:  # before the refit: the heads fit the final backbone
        quantization_aware_finetune(trainer.net.cpu(), fit, spec, run.qat)
    if run.refit is not None and info.is_main:
        from trainer.refit import refit_heads

        refit_heads(trainer.net.cpu(), fit, spec, run.refit)
    trainer.net.mirror_average = run.mirror_average  # served graph only; training saw single views
    return trainer


def run(run: FinetuneRun) -> ModelManifest | None:
    """Train and (on rank 0) finalize ``run.out``; returns its manifest on rank 0, else None."""
    started = time.monotonic()
    if run.threads:
        torch.set_num_threads(run.threads)
    device = select_device(run.device, int(os.environ.get("LOCAL_RANK", "0")))
    info = init_from_env(device)
    try:
        splits = make_splits(run.data, run.val_fraction, run.calib_fraction)
        trainer = train_model(run, splits, info, device)
        manifest = None
        if info.is_main:
            from trainer.finalize import finalize  # imported late: heavy (onnx, quantization)

            manifest = finalize(run, splits, trainer, time.monotonic() - started)
        barrier(info)
        return manifest
    finally:
        shutdown(info)
