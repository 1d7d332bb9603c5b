"""``trainer train``: split the data, fit the network, then finalize the model directory.

Two ways to fit, one release (``trainer.release.finalize``):

- ``finetune`` (the default; made the committed model): the whole pretrained EfficientNet-Lite0 is
  fine-tuned on augmented images, optionally taught int8 rounding (quantization-aware steps), then
  MLP heads are refitted on its frozen features.
- ``heads``: fine-tuning skipped; only the MLP heads are trained, on cached features of the frozen
  pretrained backbone (about 2 minutes on two cores, clearly less accurate).

Both use the same three deterministic parts of the data (``trainer.data.splits``).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from sortline.manifest import InputSpec, ModelManifest, TrainingRecord
from trainer.data import dataset, image_cache
from trainer.data.splits import DEFAULT_CALIB_FRACTION, DEFAULT_VAL_FRACTION, Splits, make_splits
from trainer.fit import checkpoint, frozen_features, heads
from trainer.fit.config import FinetuneConfig, HeadConfig, MarginConfig, QatConfig
from trainer.fit.distributed import DistInfo, barrier, init_from_env, select_device, shutdown
from trainer.fit.finetune import TrainData, Trainer, build_net
from trainer.fit.quantization_aware import quantization_aware_finetune
from trainer.fit.refit_heads import refit_heads
from trainer.model.backbone import create_backbone
from trainer.model.cascade_net import CascadeNet
from trainer.release.finalize import ModelIdentity, finalize
from trainer.release.options import ReleaseOptions
from trainer.settings import TrainSettings

log = logging.getLogger(__name__)

FINETUNE_IDENTITY = ModelIdentity("lite0-ft", "efficientnet_lite0 (fine-tuned) + 2 heads")
HEADS_IDENTITY = ModelIdentity(
    "lite0-heads",
    "efficientnet_lite0 (frozen) + 2 heads",
    validation_note="thresholds were calibrated on the calibration subset (training side); the "
    "validation split was used for nothing but these figures",
)
MIRRORED = ", mean of the image and its mirror"
FINETUNE_IDENTITY_SERVED = ModelIdentity(
    "lite0-ft",
    "efficientnet_lite0 (fine-tuned, from a served model) + MLP heads" + MIRRORED,
    validation_note="thresholds were chosen on out-of-fold predictions of the training side; the "
    "validation split was used for nothing but these figures",
)
SPLIT_RULE = (
    "validation: per <dataset-folder>/<label>, smallest sha1('<dataset-folder>/<label>/<file>'); "
    "calibration: from the rest, smallest sha1('calibration/' + same key); the rest trains"
)
FINETUNE_AUGMENTATION = (
    "belt camera: background swap of near-white pixels (p 0.3), random resized crop "
    "(scale 0.35-1), horizontal and vertical flips, rotation +-25 deg (p 0.4), colour jitter "
    "(brightness/contrast/saturation 0.3, hue 0.03), Gaussian blur (p 0.2)"
)


@dataclass(frozen=True)
class TrainRun:
    """Everything ``trainer train`` was asked to do.

    ``heads`` trains the heads on the frozen backbone: in heads mode the only fitting step, in
    finetune mode the refit after fine-tuning (None keeps the fine-tuned linear heads). ``qat`` and
    ``finetune`` apply to finetune mode only.
    """

    data: list[Path]
    out: Path
    command: str
    mode: Literal["finetune", "heads"] = "finetune"
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    heads: HeadConfig | None = field(default_factory=HeadConfig)
    qat: QatConfig | None = field(default_factory=QatConfig)  # before the heads' refit; None = off
    val_fraction: float = DEFAULT_VAL_FRACTION
    calib_fraction: float = DEFAULT_CALIB_FRACTION
    run_dir: Path = Path("runs/finetune")
    cache_dir: Path | None = None  # None: .cache/images (finetune) or .cache/features (heads)
    resume: bool = False
    device: str = "auto"
    threads: int = 0
    workers: int = 2
    mirror_average: bool = True
    release: ReleaseOptions = field(default_factory=ReleaseOptions)
    backbone_from: Path | None = None  # heads mode: a served model's backbone instead of the pretrained
    margin: MarginConfig = field(default_factory=MarginConfig)


def _train_data(images: image_cache.ImageSet, keys: set[str]) -> TrainData:
    """The cached rows whose sample key is in ``keys``."""
    rows = [i for i, s in enumerate(images.samples) if s.key in keys]
    return TrainData(images.images[rows], [images.samples[i].label for i in rows])


def _cached_parts(
    run: TrainRun, splits: Splits, info: DistInfo, spec: InputSpec
) -> tuple[TrainData, TrainData]:
    """Fit and calibration images, decoded once (rank 0 decodes; the others map the finished file)."""
    cache_dir = run.cache_dir or image_cache.DEFAULT_CACHE_DIR
    if info.is_main:
        image_cache.load(splits.fit + splits.calib, spec, cache_dir, workers=run.workers)
    barrier(info)
    cached = image_cache.load(splits.fit + splits.calib, spec, cache_dir, workers=run.workers)
    return _train_data(cached, {s.key for s in splits.fit}), _train_data(
        cached, {s.key for s in splits.calib}
    )


def train_model(run: TrainRun, splits: Splits, info: DistInfo, device: torch.device) -> Trainer:
    """Fine-tune (resuming if asked), then QAT and the heads' refit; the trainer holds the result."""
    spec = InputSpec()
    fit, calib = _cached_parts(run, splits, info, spec)
    torch.manual_seed(run.finetune.seed)
    net = build_net(create_backbone(), run.finetune.dropout)
    trainer = Trainer(net, run.finetune, spec, fit, calib, run.run_dir, info, device)
    state = checkpoint.load(run.run_dir / checkpoint.LAST) if run.resume else None
    if state is not None:
        trainer.restore(state)
    trainer.fit()
    if run.qat is not None and info.is_main:  # before the refit: the heads fit the final backbone
        quantization_aware_finetune(trainer.net.cpu(), fit, spec, run.qat)
    if run.heads is not None and info.is_main:
        refit_heads(trainer.net.cpu(), fit, spec, run.heads)
    trainer.net.mirror_average = run.mirror_average  # served graph only; training saw single views
    return trainer


def common_record(run: TrainRun, splits: Splits) -> dict[str, Any]:
    """What every training record holds: data, command, splits."""
    return {
        "data": [str(d) for d in run.data],
        "command": run.command,
        "counts": dataset.label_counts(splits.fit),
        "calibration_counts": dataset.label_counts(splits.calib),
        "validation_counts": dataset.label_counts(splits.val),
        "val_fraction": run.val_fraction,
        "calib_fraction": run.calib_fraction,
        "split": SPLIT_RULE,
    }


def finetune_record(run: TrainRun, splits: Splits, trainer: Trainer) -> TrainingRecord:
    """Where a fine-tuned model came from: data, command, splits, settings, history."""
    common = common_record(run, splits)
    return TrainingRecord(
        **{k: common[k] for k in ("data", "command", "counts")},
        seed=run.finetune.seed,
        **{k: v for k, v in common.items() if k not in ("data", "command", "counts")},
        finetune=asdict(run.finetune),
        augmentation=FINETUNE_AUGMENTATION,
        history=trainer.state.history,
        heads_refit=None if run.heads is None else asdict(run.heads),
        quantization_aware=None if run.qat is None else asdict(run.qat),
        mirror_average=run.mirror_average,
        best_epoch=trainer.state.best_epoch,
        model_selection="best mean of stage-1 and material accuracy on the calibration subset",
    )


def train_heads_only(run: TrainRun, splits: Splits) -> tuple[CascadeNet, TrainingRecord]:
    """Heads on cached features of the frozen pretrained backbone (plain and mirrored views)."""
    if run.heads is None:
        raise ValueError("heads mode trains the heads: they cannot be switched off")
    features = frozen_features.extract(
        splits.fit, run.cache_dir or frozen_features.DEFAULT_CACHE_DIR, workers=run.workers
    )
    labels = [s.label for s in features.samples]
    organic = heads.train_organic_head(features.features, labels, run.heads)
    material = heads.train_material_head(features.features, labels, run.heads)
    net = CascadeNet(create_backbone(), organic, material, mirror_average=run.mirror_average)
    record = TrainingRecord(
        **common_record(run, splits),
        seed=run.heads.seed,
        skipped_undecodable=len(features.skipped),
        heads=asdict(run.heads),
        augmentation="horizontal flip (features of both views)",
        mirror_average=run.mirror_average,
    )
    return net.eval(), record


def _identity(run: TrainRun) -> ModelIdentity:
    identity = FINETUNE_IDENTITY if run.mode == "finetune" else HEADS_IDENTITY
    if not run.mirror_average:
        return identity
    return ModelIdentity(identity.version_prefix, identity.architecture + MIRRORED, identity.validation_note)


def run(run: TrainRun) -> ModelManifest | None:
    """Train and (on rank 0) finalize ``run.out``; returns its manifest on rank 0, else None."""
    started = time.monotonic()
    if run.threads:
        torch.set_num_threads(run.threads)
    splits = make_splits(run.data, run.val_fraction, run.calib_fraction)
    if run.mode == "heads" and run.backbone_from is not None:
        from trainer.pipelines import served_heads

        prepared, record = served_heads.prepare(run, splits, common_record(run, splits))
        return finalize(None, run.out, splits, FINETUNE_IDENTITY_SERVED, record, run.release,
                        time.monotonic() - started, prepared)  # fmt: skip
    if run.mode == "heads":
        net, record = train_heads_only(run, splits)
        return finalize(net, run.out, splits, _identity(run), record, run.release, time.monotonic() - started)
    device = select_device(run.device, int(os.environ.get("LOCAL_RANK", "0")))
    info = init_from_env(device)
    try:
        trainer = train_model(run, splits, info, device)
        manifest = None
        if info.is_main:
            record = finetune_record(run, splits, trainer)
            manifest = finalize(
                trainer.net, run.out, splits, _identity(run), record, run.release, time.monotonic() - started
            )
        barrier(info)
        return manifest
    finally:
        shutdown(info)


def run_from_settings(settings: TrainSettings, command: str) -> TrainRun:
    """The run ``trainer train`` flags describe; unset epochs and batch size take the mode's defaults."""
    finetune = FinetuneConfig(
        epochs=settings.epochs or FinetuneConfig.epochs,
        image_size=settings.image_size,
        final_epochs=settings.final_epochs,
        batch_size=settings.batch_size or FinetuneConfig.batch_size,
        lr=settings.lr,
        head_lr=settings.head_lr,
        label_smoothing=settings.label_smoothing,
        ema_decay=settings.ema_decay,
        patience=settings.patience,
        seed=settings.seed,
    )
    if settings.mode == "heads":  # the heads are the only fitting step: they take the epochs
        epochs, batch_size = (
            settings.epochs or HeadConfig.epochs,
            settings.batch_size or HeadConfig.batch_size,
        )
        head_config = HeadConfig(
            epochs=epochs, batch_size=batch_size, seed=settings.seed, hidden=settings.hidden
        )
    else:
        head_config = HeadConfig(seed=settings.seed, hidden=settings.hidden) if settings.refit_heads else None
    return TrainRun(
        data=settings.data,
        out=settings.out,
        command=command.replace(" --resume", ""),  # resuming does not change the result
        mode=settings.mode,
        finetune=finetune,
        heads=head_config,
        qat=QatConfig(steps=settings.qat_steps, seed=settings.seed) if settings.qat_steps > 0 else None,
        val_fraction=settings.val_fraction,
        calib_fraction=settings.calib_fraction,
        run_dir=settings.run_dir,
        cache_dir=settings.cache_dir,
        resume=settings.resume,
        device=settings.device,
        threads=settings.threads,
        workers=settings.workers,
        mirror_average=settings.mirror_average,
        backbone_from=settings.backbone_from,
        margin=MarginConfig(
            folds=settings.folds,
            target_purity=settings.target_purity,
            hazard_target_purity=settings.hazard_target_purity,
            z=settings.purity_margin_z,
        ),
        release=ReleaseOptions(
            workers=settings.workers,
            int8=settings.int8,
            fp16=settings.fp16,
            speed_seconds=settings.speed_seconds,
        ),
    )
