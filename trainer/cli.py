"""``trainer``: train, evaluate, build variants, promote, sample; data is ``DIR/<label>/*.jpg``."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pika.exceptions import AMQPError

from sortline.manifest import ModelIntegrityError
from sortline.settings import configure_logging
from trainer.dataset import DataLayoutError

PROG = "trainer"
log = logging.getLogger(__name__)


def _fraction(text: str) -> float:
    """argparse type: a share in [0, 1), so a typo fails at parse time with exit 2."""
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be within [0, 1), got {value}")
    return value


def _positive(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    """argparse type: an integer >= 0 (0 turns a step off)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _common(parser: argparse.ArgumentParser, *, data_help: str) -> None:
    """Flags every subcommand shares: data folders, decode threads, log level."""
    parser.add_argument("--data", nargs="+", type=Path, required=True, metavar="DIR", help=data_help)
    parser.add_argument("--workers", type=_positive, default=2, help="Threads decoding images (default: 2).")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="Logging level."
    )


def _train_parser(sub: Any) -> None:
    """``trainer train`` flags."""
    p = sub.add_parser(
        "train",
        help="Fine-tune (or train heads on) EfficientNet-Lite0, calibrate, export ONNX (+int8) + manifest.",
        description="Train a cascade model. Under torchrun (--nproc-per-node N) training is data-parallel.",
    )
    _common(p, data_help="Labelled data folders DIR/<label>/*.jpg; several are combined.")
    p.add_argument(
        "--out", type=Path, required=True, help="Model directory to write (model.onnx, manifest.json)."
    )
    p.add_argument(
        "--mode",
        choices=["finetune", "heads"],
        default="heads",
        help="'heads' (default): frozen backbone, MLP heads on cached features, ~2 min on 2 CPU cores. "
        "'finetune' (made the committed model): fine-tune the whole network on augmented images, refit MLP "
        "heads on it, serve the mean of each image and its mirror (~50 min on 2 cores).",
    )
    p.add_argument(
        "--val-fraction", type=_fraction, default=0.15, help="Validation share per label (default 0.15)."
    )
    p.add_argument("--seed", type=int, default=0, help="Seed of initialisation and shuffling (default 0).")
    p.add_argument("--epochs", type=_positive, default=None, help="Epochs (default: 16 finetune, 60 heads).")
    p.add_argument(
        "--batch-size", type=_positive, default=None, help="Batch size (default: 32 finetune, 256 heads)."
    )
    p.add_argument(
        "--hidden",
        type=int,
        default=512,
        help="Hidden units of each head's MLP (heads mode, and refitted heads in finetune mode); "
        "0 for linear heads (default 512).",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="Cache folder (default .cache/images for finetune, .cache/features for heads).",
    )
    _finetune_flags(p)


def _finetune_flags(p: argparse.ArgumentParser) -> None:
    """Flags of ``--mode finetune`` only."""
    g = p.add_argument_group("finetune mode")
    g.add_argument(
        "--image-size", type=_positive, default=160, help="Training resolution of early epochs (160)."
    )
    g.add_argument(
        "--final-epochs",
        type=int,
        default=3,
        help="Last epochs trained at the served input size, 224 (default 3; an early stop may come first).",
    )
    g.add_argument("--lr", type=float, default=4e-4, help="Backbone peak learning rate (default 4e-4).")
    g.add_argument("--head-lr", type=float, default=2e-3, help="Heads' peak learning rate (default 2e-3).")
    g.add_argument("--label-smoothing", type=float, default=0.1, help="Stage-2 label smoothing (0.1).")
    g.add_argument(
        "--ema-decay",
        type=_fraction,
        default=0.998,
        help="Score, select and export an exponential moving average of the weights with this "
        "per-step decay (default 0.998, about 3 epochs of memory here); 0 = off.",
    )
    g.add_argument(
        "--qat-steps",
        type=_non_negative,
        default=150,
        help="Before the heads' refit, this many quantization-aware steps at the served size (int8 "
        "rounding simulated, see trainer/qat.py), so the int8 variant keeps the float model's "
        "accuracy (default 150, about one epoch here); 0 = off.",
    )
    g.add_argument(
        "--patience",
        type=_positive,
        default=5,
        help="Stop after this many epochs without a better calibration-subset score (default 5).",
    )
    g.add_argument(
        "--calib-fraction",
        type=_fraction,
        default=0.1,
        help="Share of the training side held out for model selection and thresholds (default 0.1).",
    )
    g.add_argument(
        "--run-dir", type=Path, default=Path("runs/finetune"), help="Checkpoints (default runs/finetune)."
    )
    g.add_argument("--resume", action="store_true", help="Continue from RUN_DIR/last.pt if it exists.")
    g.add_argument(
        "--device", default="auto", help="auto (CUDA, else MPS, else CPU), or a torch device like cuda:1."
    )
    g.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch's default.")
    g.add_argument(
        "--no-int8", dest="int8", action="store_false", help="Skip the int8 ONNX variant (for CPUs)."
    )
    g.add_argument(
        "--no-fp16", dest="fp16", action="store_false", help="Skip the fp16 ONNX variant (for GPUs)."
    )
    g.add_argument(
        "--no-mirror-average",
        dest="mirror_average",
        action="store_false",
        help="Export single views: half the compute, but more items to residual at 97%% purity. By "
        "default the exported graph averages each image with its mirror.",
    )
    g.add_argument(
        "--no-refit-heads",
        dest="refit_heads",
        action="store_false",
        help="Keep the fine-tuned linear heads instead of refitting MLP heads (--hidden) on the "
        "fine-tuned, frozen backbone (the default: much better recovery at 97%% purity).",
    )
    g.add_argument(
        "--speed-seconds",
        type=float,
        default=4.0,
        help="Seconds per fp32/int8 throughput measurement and batch size (default 4).",
    )


def _evaluate_parser(sub: Any) -> None:
    """``trainer evaluate`` flags."""
    p = sub.add_parser("evaluate", help="Score a model directory on labelled folders through the cascade.")
    _common(p, data_help="Labelled data folders DIR/<label>/*.jpg to evaluate on.")
    p.add_argument("--model", type=Path, required=True, help="Model directory (manifest.json + model.onnx).")
    p.add_argument(
        "--json", action="store_true", help="Print the figures as JSON on stdout instead of a table."
    )
    p.add_argument("--predictions", type=Path, metavar="FILE", help="Write one JSON line per image to FILE.")
    p.add_argument(
        "--split",
        choices=["all", "val"],
        default="all",
        help="'val': only the deterministic validation split used in training (honest figures); default all.",
    )
    p.add_argument(
        "--val-fraction",
        type=_fraction,
        default=None,
        help="Validation share for --split val (default: the one in the model's manifest, else 0.15).",
    )
    p.add_argument(
        "--batch-size", type=_positive, default=32, help="Images per inference batch (default 32)."
    )
    p.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="Also write report.json, PNG plots (confusion matrices, stage-1 ROC/PR, purity vs recovery, "
        "worst mistakes) and summary.md into DIR.",
    )
    p.add_argument(
        "--variant", default=None, help="Evaluate a variant listed in the manifest (e.g. int8) instead."
    )


def _variants_parser(sub: Any) -> None:
    """``trainer variants`` flags."""
    p = sub.add_parser(
        "variants",
        help="(Re)build the int8 (CPU) and fp16 (GPU) variants of a model directory, scored on validation.",
        description="Adds the variants to an existing model directory without retraining: int8 ranges "
        "from its training side, each variant scored on its validation split (the fractions in its "
        "manifest) and kept only within 0.5 point of fp32's material accuracy.",
    )
    _common(p, data_help="The labelled data folders the model was trained on.")
    p.add_argument("--model", type=Path, required=True, help="Model directory (manifest.json + model.onnx).")
    p.add_argument("--no-int8", dest="int8", action="store_false", help="Skip the int8 variant.")
    p.add_argument("--no-fp16", dest="fp16", action="store_false", help="Skip the fp16 variant.")
    p.add_argument(
        "--speed-seconds", type=float, default=4.0, help="Seconds per fp32/int8 speed point (default 4)."
    )


def _promote_parser(sub: Any) -> None:
    """``trainer promote`` flags."""
    p = sub.add_parser(
        "promote",
        help="Install a verified model directory where the workers read theirs, and make them reload it.",
        description="Verifies MODEL (sha256 of every file), copies it over TO without ever leaving a "
        "half-written directory, then publishes a ModelPromoted event on sortline.models: every worker "
        "serving TO reloads it between two batches, or keeps its old model if the new one fails to load.",
    )
    p.add_argument("--model", type=Path, required=True, help="The model directory to promote.")
    p.add_argument("--to", type=Path, required=True, help="The directory the workers serve (their --model).")
    p.add_argument(
        "--amqp-url",
        default=None,
        help="Broker for the event. Default: as the workers read it ($SORTLINE_AMQP_URL_FILE, "
        "$SORTLINE_AMQP_URL or $AMQP_URL, else the local broker; TLS files from $SORTLINE_TLS_*).",
    )
    p.add_argument(
        "--no-announce", dest="announce", action="store_false", help="Install only; publish no event."
    )
    p.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="Logging level."
    )


def _sample_parser(sub: Any) -> None:
    """``trainer sample`` flags."""
    p = sub.add_parser("sample", help="Write a small demo sample drawn from the validation split.")
    _common(p, data_help="Labelled data folders DIR/<label>/*.jpg to draw from.")
    p.add_argument(
        "--out", type=Path, required=True, help="Folder to write <label>/*.jpg and README.md into."
    )
    p.add_argument("--per-class", type=_positive, default=6, help="Images per material class (default 6).")
    p.add_argument("--organic", type=_positive, default=12, help="Organic images (default 12).")
    p.add_argument("--val-fraction", type=_fraction, default=0.15, help="Validation share (default 0.15).")


def build_parser() -> argparse.ArgumentParser:
    """The ``trainer`` parser with its five subcommands."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{train,evaluate,variants,promote,sample}"
    )
    _train_parser(sub)
    _evaluate_parser(sub)
    _variants_parser(sub)
    _promote_parser(sub)
    _sample_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trainer`` console script; bad input exits 2 with a one-line message."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(args_list)
    configure_logging(args.log_level)
    command = " ".join([PROG, shlex.join(args_list)])
    try:
        if args.command == "train":
            return _run_train(args, command)
        if args.command == "evaluate":
            return _run_evaluate(args)
        if args.command == "variants":
            return _run_variants(args)
        if args.command == "promote":
            return _run_promote(args)
        return _run_sample(args, command)
    except (DataLayoutError, ModelIntegrityError, FileNotFoundError) as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return 2
    except AMQPError as error:  # promote: installed, but the workers could not be told
        print(f"{PROG} {args.command}: error: cannot announce on the broker: {error!r}", file=sys.stderr)
        return 2


def _run_train(args: argparse.Namespace, command: str) -> int:
    """Heavy imports (torch, timm) happen here, so ``--help`` and argument errors stay fast."""
    if args.mode == "finetune":
        return _run_finetune(args, command)
    from trainer.features import DEFAULT_CACHE_DIR
    from trainer.heads import HeadConfig
    from trainer.train import TrainConfig, run

    heads = HeadConfig(
        epochs=args.epochs or 60, batch_size=args.batch_size or 256, seed=args.seed, hidden=args.hidden
    )
    cfg = TrainConfig(
        data=args.data,
        out=args.out,
        command=command,
        val_fraction=args.val_fraction,
        head_config=heads,
        workers=args.workers,
        cache_dir=args.cache_dir or DEFAULT_CACHE_DIR,
    )
    manifest = run(cfg)
    print(f"wrote {args.out} ({manifest.version})")
    return 0


def _run_finetune(args: argparse.Namespace, command: str) -> int:
    from trainer.finetune import FinetuneConfig
    from trainer.heads import HeadConfig
    from trainer.imagecache import DEFAULT_CACHE_DIR
    from trainer.qat import QatConfig
    from trainer.train_finetune import FinetuneRun, run

    cfg = FinetuneConfig(
        epochs=args.epochs or 16,
        image_size=args.image_size,
        final_epochs=args.final_epochs,
        batch_size=args.batch_size or 32,
        lr=args.lr,
        head_lr=args.head_lr,
        label_smoothing=args.label_smoothing,
        ema_decay=args.ema_decay,
        patience=args.patience,
        seed=args.seed,
    )
    job = FinetuneRun(
        data=args.data,
        out=args.out,
        command=command.replace(" --resume", ""),  # resuming does not change the result
        finetune=cfg,
        val_fraction=args.val_fraction,
        calib_fraction=args.calib_fraction,
        run_dir=args.run_dir,
        cache_dir=args.cache_dir or DEFAULT_CACHE_DIR,
        resume=args.resume,
        device=args.device,
        threads=args.threads,
        workers=args.workers,
        int8=args.int8,
        fp16=args.fp16,
        speed_seconds=args.speed_seconds,
        refit=HeadConfig(seed=args.seed, hidden=args.hidden) if args.refit_heads else None,
        mirror_average=args.mirror_average,
        qat=QatConfig(steps=args.qat_steps, seed=args.seed) if args.qat_steps > 0 else None,
    )
    manifest = run(job)
    if manifest is not None:
        print(f"wrote {args.out} ({manifest.version})")
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from trainer.report import evaluate_command

    return evaluate_command(args)


def _run_variants(args: argparse.Namespace) -> int:
    from trainer.variants import refresh_variants

    manifest = refresh_variants(
        args.model, args.data, workers=args.workers, int8=args.int8, fp16=args.fp16,
        speed_seconds=args.speed_seconds,
    )  # fmt: skip
    for name in ("int8", "fp16"):
        if name in manifest.validation and (args.int8 if name == "int8" else args.fp16):
            figures = manifest.validation[name]
            kept = "kept" if figures["kept"] else "dropped (over the 0.5-point budget)"
            print(f"{name}: material accuracy {figures['accuracy_delta']:+.2%} vs fp32, {kept}")
    return 0


def _run_promote(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from sortline.settings import SortlineSettings
    from trainer.promote import announce, install

    try:  # the broker as every process reads it: env, secret file (SORTLINE_AMQP_URL_FILE), TLS files
        broker = SortlineSettings(**({"amqp_url": args.amqp_url} if args.amqp_url else {}))
    except ValidationError as error:
        print(f"{PROG} promote: error: {error.errors()[0]['msg']}", file=sys.stderr)
        return 2
    manifest = install(args.model, args.to)
    print(f"installed {manifest.version} at {args.to}")
    if args.announce:
        announce(broker.amqp_url.get_secret_value(), manifest, broker.tls_files())
        print(f"announced {manifest.version} on sortline.models")
    return 0


def _run_sample(args: argparse.Namespace, command: str) -> int:
    from trainer.sample import write_sample

    count = write_sample(
        args.data,
        args.out,
        per_class=args.per_class,
        organic=args.organic,
        val_fraction=args.val_fraction,
        command=command,
    )
    print(f"wrote {count} images to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
