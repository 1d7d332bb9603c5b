"""The flags of every ``trainer`` subcommand, as pydantic-settings models (env ``SORTLINE_<FLAG>``).

Defaults are not written here: each comes from the dataclass or module that uses it
(``trainer.fit.config``, ``trainer.data.splits``, ``trainer.release.finalize``), so a default
changed there is the default of the flag too. Kept free of torch so ``--help`` answers at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator
from pydantic_settings import CliVariadicArg

from sortline.labels import DATA_LABELS
from sortline.messages import Identifier
from sortline.settings import CliSettings, SortlineSettings
from trainer.data.splits import DEFAULT_CALIB_FRACTION, DEFAULT_VAL_FRACTION
from trainer.fit.config import FinetuneConfig, HeadConfig, MarginConfig, QatConfig
from trainer.release.options import ReleaseOptions

FT, HEADS, QAT, RELEASE, MARGIN = FinetuneConfig, HeadConfig, QatConfig, ReleaseOptions, MarginConfig
MAX_SEED = 2**32 - 1

#: A label folder's name as --map and --ignore take it: no path separator, no '=' or ','.
FolderName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^/\\=,]+$")]


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
    backbone_from: Path | None = Field(
        None,
        json_schema_extra={"metavar": "DIR"},
        description="Heads mode: train the heads on the (fine-tuned) backbone of this served model directory "
        "instead of the pretrained one, with out-of-fold calibration (--folds, --purity-margin-z); DIR may "
        "be --out itself, its backbone is read first.",
    )
    folds: int = Field(
        MARGIN.folds, ge=2, le=20, description="--backbone-from: folds of the out-of-fold calibration."
    )
    target_purity: float = Field(
        MARGIN.target_purity,
        ge=0.5,
        le=0.999,
        description="--backbone-from: purity every recyclable bin and organic must reach (as a lower bound).",
    )
    hazard_target_purity: float = Field(
        MARGIN.hazard_target_purity,
        ge=0.5,
        le=0.999,
        description="--backbone-from: purity the hazard bin must reach (as a lower bound).",
    )
    purity_margin_z: float = Field(
        MARGIN.z,
        ge=0.0,
        le=5.0,
        description="--backbone-from: z of the Wilson lower bound a bin's purity must clear the target with "
        "(1.645: one-sided 95%; 0: the purity seen).",
    )

    @model_validator(mode="after")
    def _backbone_in_heads_mode(self) -> TrainSettings:
        if self.backbone_from is not None and self.mode != "heads":
            raise ValueError("--backbone-from trains heads: use it with --mode heads")
        return self


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
    variant: str = Field(
        "auto",
        pattern=r"^[a-z0-9_-]{1,32}$",
        description="Model file to score: auto (the one a CPU worker serves: int8 when the manifest keeps "
        "it within 0.5 point, else the fp32 file), main (the fp32 file), or a variant listed in the manifest "
        "(e.g. fp16, the GPU workers' file). The report names the file it scored.",
    )
    map: dict[FolderName, str] = Field(
        {},
        max_length=64,
        json_schema_extra={"metavar": "FOLDER=LABEL"},
        description="Score the images of a label folder under another name, e.g. --map biological=organic "
        f"(several: repeat the flag). LABEL is one of {', '.join(DATA_LABELS)}.",
    )
    ignore: list[FolderName] = Field(
        [],
        max_length=64,
        json_schema_extra={"metavar": "FOLDER"},
        description="Label folders to leave out, e.g. --ignore widgets (several: repeat the flag). Any other "
        "folder whose name is not a label is an error, so no image is dropped unnoticed.",
    )
    min_bin_items: int = Field(
        20,
        ge=1,
        le=100_000,
        description="A bin's purity is judged against the target only when the bin holds this many items; "
        "below that the report shows the figure and its count, without a verdict.",
    )

    loso: bool = Field(
        False,
        description="Also leave one source out: for each data folder with recyclables, heads on the frozen "
        "pretrained backbone trained on the other folders (all their images) score all of it "
        "(trainer/evaluation/loso.py; features cached in .cache/features).",
    )

    @model_validator(mode="after")
    def _labels_known(self) -> EvaluateSettings:
        """A mapping onto a name the models do not know, or a folder both mapped and left out, is a typo."""
        wrong = [f"{folder}={label}" for folder, label in self.map.items() if label not in DATA_LABELS]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: not a label; labels are {', '.join(DATA_LABELS)}")
        if both := sorted(set(self.map) & set(self.ignore)):
            raise ValueError(f"{', '.join(both)}: both mapped (--map) and left out (--ignore)")
        return self


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
    """Make a model the one the workers serve, and make them reload it.

    Registry (a site's models: --registry R --model-version V): V must pass the gate first, scored beside
    the current version on --gate-data (a labelled folder) and refused when worse by more than
    --gate-margin on material accuracy, stage 1 or any bin's purity; then `current` points at V.
    Directory (--model M --to D): M is verified (sha256 of every file) and copied over D without
    ever leaving a half-written directory. Either way a ModelPromoted event on sortline.models makes
    every worker reload between two batches, or keep its old model if the new one fails to load.
    """

    registry: Path | None = Field(None, description="The site's model registry (see `trainer publish`).")
    model_version: str | None = Field(
        None, description="With --registry: the version to promote (its number, folder or model version)."
    )
    gate_data: list[Path] = Field(
        [],
        description="With --registry: labelled folders DIR/<label>/*.jpg to score candidate and current on.",
    )
    gate_margin: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="How much worse than current the candidate may be on any gate figure.",
    )
    gate_min_bin_items: int = Field(
        20, ge=1, le=100_000, description="A bin's purity is compared only with this many items in it."
    )
    force: bool = Field(False, description="Promote without the gate (and say so in the registry's history).")
    model: Path | None = Field(None, description="Without --registry: the model directory to promote.")
    to: Path | None = Field(None, description="Without --registry: the directory the workers serve.")
    announce: bool = Field(True, description="Publish the event; --no-announce only installs.")

    @model_validator(mode="after")
    def _one_way(self) -> PromoteSettings:
        if self.registry is not None:
            if self.model_version is None or self.model is not None or self.to is not None:
                raise ValueError("with --registry give --model-version (and not --model/--to)")
            if not self.gate_data and not self.force:
                raise ValueError("give --gate-data to score the candidate, or --force to skip the gate")
        elif self.model is None or self.to is None:
            raise ValueError("give --registry and --model-version, or --model and --to")
        return self


class PublishSettings(SortlineSettings):
    """Add a model directory to a registry as its next numbered version (copied, verified)."""

    model: Path = Field(description="The model directory (manifest.json + model.onnx + variants).")
    registry: Path = Field(description="The registry (created when missing).")
    evaluation: Path | None = Field(
        None, description="The model's `trainer evaluate --report` folder, kept as the version's evaluation/."
    )
    keep: int = Field(10, ge=1, le=10_000, description="Versions kept; older ones no pointer names go.")


class RollbackSettings(SortlineSettings):
    """Point a registry's `current` back at the version it served before, and make workers reload."""

    registry: Path = Field(description="The site's model registry.")
    announce: bool = Field(True, description="Publish the event; --no-announce only moves the pointer.")


class ShadowSettings(SortlineSettings):
    """Try a version in shadow: workers run with --shadow run it beside current, deciding nothing."""

    registry: Path = Field(description="The site's model registry.")
    model_version: str | None = Field(None, description="The version to try; none: end the trial.")
    announce: bool = Field(True, description="Publish the event so workers load it now.")


class ReviewSettings(SortlineSettings):
    """Serve a page where a person labels a line's review items (keyboard: one key per label).

    Items come from sortline.review.<line> (what workers found hard: abstained, shadow
    disagreements, an audit sample); each label writes the item's views into OUT/<label>/, the
    layout `trainer train --data` reads, and takes the item off the queue.
    """

    line_id: Identifier = Field("line-1", description="The line whose review queue to work through.")
    out: Path = Field(description="Folder to write the labelled views into (OUT/<label>/*.jpg).")
    port: int = Field(8090, ge=0, le=65535, description="Port of the page (0: any free port, printed).")


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
    "publish": PublishSettings,
    "rollback": RollbackSettings,
    "shadow": ShadowSettings,
    "review": ReviewSettings,
    "sample": SampleSettings,
}
