"""The flags of every ``trainer`` subcommand, as pydantic-settings models (env ``SORTLINE_<FLAG>``).

Defaults are not written here: each comes from the dataclass or module that uses it
(``trainer.fit.config``, ``trainer.data.splits``, ``trainer.release.finalize``), so a default
changed there is the default of the flag too. Kept free of torch so ``--help`` answers at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import CliVariadicArg

from sortline.labels import DATA_LABELS
from sortline.settings import CliSettings, SortlineSettings
from trainer.data.splits import DEFAULT_CALIB_FRACTION, DEFAULT_VAL_FRACTION
from trainer.fit.config import FinetuneConfig, HeadConfig, QatConfig
from trainer.release.options import ReleaseOptions

FT, HEADS, QAT, RELEASE = FinetuneConfig, HeadConfig, QatConfig, ReleaseOptions
MAX_SEED = 2**32 - 1


class DataCommand(CliSettings):
    """Flags of the subcommands that read labelled folders."""

    data: CliVariadicArg[list[Path]] = Field(
        json_schema_extra={"metavar": "DIR"},
        description="Labelled data folders DIR/<label>/*.jpg (several: --data A B); they are combined. "
        f"Labels (folder names): {', '.join(DATA_LABELS)}.",
    )
    workers: int = Field(RELEASE.workers, ge=1, le=64, description="Threads decoding images.")


class TrainSettings(DataCommand):
    """Fine-tune (or train heads on) EfficientNet-Lite0, calibrate, export ONNX (+ variants) + manifest.

    Under torchrun (--nproc-per-node N) fine-tuning is data-parallel.
    """

    out: Path = Field(description="Model directory to write (model.onnx, manifest.json, variants).")
    mode: Literal["finetune", "heads"] = Field(
        "finetune",
        description="'finetune' (made the committed model, ~50 min on 2 cores): fine-tune the whole "
        "network on augmented images, refit MLP heads on it, serve the mean of each image and its "
        "mirror. 'heads' (~2 min, less accurate): skip fine-tuning; train only the MLP heads on cached "
        "features of the frozen pretrained backbone.",
    )
    val_fraction: float = Field(
        DEFAULT_VAL_FRACTION, ge=0.0, lt=1.0, description="Validation share per label."
    )
    calib_fraction: float = Field(
        DEFAULT_CALIB_FRACTION,
        ge=0.0,
        lt=1.0,
        description="Share of the training side held out for model selection and thresholds.",
    )
    seed: int = Field(FT.seed, ge=0, le=MAX_SEED, description="Seed of initialisation and shuffling.")
    epochs: int | None = Field(
        None,
        ge=1,
        le=1000,
        description=f"Epochs. Default: {FT.epochs} when fine-tuning, {HEADS.epochs} for the heads in "
        "heads mode.",
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        le=4096,
        description=f"Batch size. Default: {FT.batch_size} when fine-tuning, {HEADS.batch_size} in "
        "heads mode.",
    )
    hidden: int = Field(
        HEADS.hidden,
        ge=0,
        le=8192,
        description="Hidden units of each head's MLP (heads mode, and the refitted heads when fine-tuning); "
        "0 for linear heads.",
    )
    cache_dir: Path | None = Field(
        None,
        description="Cache folder. Default: .cache/images when fine-tuning, .cache/features in heads mode.",
    )
    image_size: int = Field(
        FT.image_size, ge=32, le=1024, description="Fine-tuning: resolution of early epochs."
    )
    final_epochs: int = Field(
        FT.final_epochs,
        ge=0,
        le=1000,
        description=f"Fine-tuning: last epochs trained at the served input size, {FT.final_size} "
        "(an early stop may come first).",
    )
    lr: float = Field(FT.lr, gt=0.0, le=1.0, description="Fine-tuning: backbone peak learning rate.")
    head_lr: float = Field(FT.head_lr, gt=0.0, le=1.0, description="Fine-tuning: heads' peak learning rate.")
    label_smoothing: float = Field(
        FT.label_smoothing, ge=0.0, lt=1.0, description="Fine-tuning: stage-2 label smoothing."
    )
    ema_decay: float = Field(
        FT.ema_decay,
        ge=0.0,
        lt=1.0,
        description="Fine-tuning: score, select and export an exponential moving average of the weights "
        "with this per-step decay (the default is about 3 epochs of memory here); 0 = off.",
    )
    qat_steps: int = Field(
        QAT.steps,
        ge=0,
        le=100_000,
        description="Fine-tuning: before the heads' refit, this many quantization-aware steps at the served "
        "size (int8 rounding simulated, see trainer/fit/quantization_aware.py), so the int8 variant keeps "
        "the float model's accuracy (the default is about one epoch here); 0 = off.",
    )
    patience: int = Field(
        FT.patience,
        ge=1,
        le=1000,
        description="Fine-tuning: stop after this many epochs without a better calibration-subset score.",
    )
    run_dir: Path = Field(Path("runs/finetune"), description="Fine-tuning: checkpoints.")
    resume: bool = Field(False, description="Fine-tuning: continue from RUN_DIR/last.pt if it exists.")
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|mps|cuda(:[0-9]+)?)$",
        description="Fine-tuning: auto (CUDA, else MPS, else CPU), or a torch device like cuda:1.",
    )
    threads: int = Field(0, ge=0, le=1024, description="torch CPU threads; 0 = torch's default.")
    int8: bool = Field(RELEASE.int8, description="Build the int8 ONNX variant (for CPUs).")
    fp16: bool = Field(RELEASE.fp16, description="Build the fp16 ONNX variant (for GPUs).")
    mirror_average: bool = Field(
        True,
        description="Export a graph that averages each image with its mirror: twice the compute, fewer "
        "items to residual at 97% purity. --no-mirror-average exports single views.",
    )
    refit_heads: bool = Field(
        True,
        description="Fine-tuning: refit MLP heads (--hidden) on the fine-tuned, frozen backbone (much better "
        "recovery at 97% purity); --no-refit-heads keeps the fine-tuned linear heads.",
    )
    speed_seconds: float = Field(
        RELEASE.speed_seconds, gt=0.0, le=600.0, description="Seconds per fp32/int8 throughput measurement."
    )


class EvaluateSettings(DataCommand):
    """Score a model directory on labelled folders through the cascade, as the worker serves it."""

    model: Path = Field(description="Model directory (manifest.json + model.onnx).")
    json_output: bool = Field(
        False,
        alias="json",
        description="Print the figures as JSON on stdout instead of a table.",
    )
    predictions: Path | None = Field(None, description="Write one JSON line per image to this file.")
    split: Literal["all", "val"] = Field(
        "all", description="'val': only the deterministic validation split used in training (honest figures)."
    )
    val_fraction: float | None = Field(
        None,
        ge=0.0,
        lt=1.0,
        description="Validation share for --split val. Default: the model manifest's, else "
        f"{DEFAULT_VAL_FRACTION}.",
    )
    batch_size: int = Field(32, ge=1, le=4096, description="Images per inference batch.")
    report: Path | None = Field(
        None,
        description="Also write report.json, PNG plots (confusion matrices, stage-1 ROC/PR, purity vs "
        "recovery, worst mistakes) and summary.md into this folder.",
    )
    variant: str | None = Field(
        None,
        pattern=r"^[a-z0-9_-]{1,32}$",
        description="Evaluate a variant listed in the manifest (e.g. int8).",
    )


class VariantsSettings(DataCommand):
    """(Re)build the int8 (CPU) and fp16 (GPU) variants of a model directory, scored on validation.

    Adds the variants to an existing model directory without retraining: int8 ranges from its
    training side, each variant scored on its validation split (the fractions in its manifest) and
    kept only within 0.5 point of fp32's material accuracy.
    """

    model: Path = Field(description="Model directory (manifest.json + model.onnx).")
    int8: bool = Field(RELEASE.int8, description="Build the int8 variant.")
    fp16: bool = Field(RELEASE.fp16, description="Build the fp16 variant.")
    speed_seconds: float = Field(
        RELEASE.speed_seconds, gt=0.0, le=600.0, description="Seconds per fp32/int8 speed point."
    )


class PromoteSettings(SortlineSettings):
    """Install a verified model directory where the workers read theirs, and make them reload it.

    Verifies MODEL (sha256 of every file), copies it over TO without ever leaving a half-written
    directory, then publishes a ModelPromoted event on sortline.models: every worker serving TO
    reloads it between two batches, or keeps its old model if the new one fails to load. The broker
    is found as every process finds it (--amqp-url, its file, TLS files and their variables).
    """

    model: Path = Field(description="The model directory to promote.")
    to: Path = Field(description="The directory the workers serve (their --model).")
    announce: bool = Field(True, description="Publish the event; --no-announce only installs.")


class SampleSettings(DataCommand):
    """Write a small demo sample drawn from the validation split."""

    out: Path = Field(description="Folder to write <label>/*.jpg and README.md into.")
    per_class: int = Field(6, ge=1, le=10_000, description="Images per material class.")
    organic: int = Field(12, ge=1, le=10_000, description="Organic images.")
    val_fraction: float = Field(
        DEFAULT_VAL_FRACTION, ge=0.0, lt=1.0, description="Validation share per label."
    )


COMMANDS: dict[str, type[CliSettings]] = {
    "train": TrainSettings,
    "evaluate": EvaluateSettings,
    "variants": VariantsSettings,
    "promote": PromoteSettings,
    "sample": SampleSettings,
}
