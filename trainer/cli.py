"""``trainer``: train, evaluate, build variants, publish, promote, roll back, shadow, review, sample;
data is ``DIR/<label>/*.jpg``."""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Sequence

from pika.exceptions import AMQPError

from sortline.manifest import ModelIntegrityError
from sortline.provisioning import BrokerSetupError
from sortline.registry import RegistryError
from sortline.settings import configure_logging, parse_command
from trainer.data.dataset import DataLayoutError
from trainer.settings import (
    COMMANDS,
    EvaluateSettings,
    PromoteSettings,
    PublishSettings,
    ReviewSettings,
    RollbackSettings,
    SampleSettings,
    ShadowSettings,
    TrainSettings,
    VariantsSettings,
)

PROG = "trainer"
log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trainer`` console script; bad input exits 2 with a one-line message."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        name, settings = parse_command(COMMANDS, args_list, PROG, __doc__ or "")
    except SystemExit as stop:  # --help (0) or bad flags (2, the message already printed)
        return int(stop.code or 0)
    configure_logging(settings.log_level, settings.log_format)
    command = " ".join([PROG, shlex.join(args_list)])
    try:
        if isinstance(settings, TrainSettings):
            return run_train(settings, command)
        if isinstance(settings, EvaluateSettings):
            return run_evaluate(settings)
        if isinstance(settings, VariantsSettings):
            return run_variants(settings)
        if isinstance(settings, PromoteSettings | PublishSettings | RollbackSettings | ShadowSettings):
            return run_lifecycle(settings)
        if isinstance(settings, ReviewSettings):
            from trainer.review.command import serve_review

            return serve_review(settings)
        assert isinstance(settings, SampleSettings)
        return run_sample(settings, command)
    except (
        DataLayoutError,
        ModelIntegrityError,
        FileNotFoundError,
        RegistryError,
    ) as error:  # GateRefused too
        print(f"{PROG} {name}: error: {error}", file=sys.stderr)
        return 2
    except (AMQPError, BrokerSetupError) as error:  # promote: installed, but the workers could not be told
        print(f"{PROG} {name}: error: cannot announce on the broker: {error!r}", file=sys.stderr)
        return 2


def run_train(settings: TrainSettings, command: str) -> int:
    """Heavy imports (torch, timm) happen here, so ``--help`` and argument errors stay fast."""
    from trainer.pipelines import train

    manifest = train.run(train.run_from_settings(settings, command))
    if manifest is not None:
        print(f"wrote {settings.out} ({manifest.version})")
    return 0


def run_evaluate(settings: EvaluateSettings) -> int:
    from trainer.evaluation.command import evaluate_command

    return evaluate_command(settings)


def run_variants(settings: VariantsSettings) -> int:
    from trainer.release.variants import refresh_variants

    manifest = refresh_variants(
        settings.model, settings.data, workers=settings.workers, int8=settings.int8, fp16=settings.fp16,
        speed_seconds=settings.speed_seconds,
    )  # fmt: skip
    for name in ("int8", "fp16"):
        if name in manifest.validation and getattr(settings, name):
            figures = manifest.validation[name]
            kept = "kept" if figures["kept"] else "dropped (over the 0.5-point budget)"
            print(f"{name}: material accuracy {figures['accuracy_delta']:+.2%} vs fp32, {kept}")
    return 0


def run_lifecycle(settings: PromoteSettings | PublishSettings | RollbackSettings | ShadowSettings) -> int:
    from trainer.release import lifecycle

    action = {
        PromoteSettings: lifecycle.promote,
        PublishSettings: lifecycle.publish,
        RollbackSettings: lifecycle.rollback,
        ShadowSettings: lifecycle.shadow,
    }[type(settings)]
    action(settings)
    return 0


def run_sample(settings: SampleSettings, command: str) -> int:
    from trainer.data.demo_sample import write_sample

    count = write_sample(
        settings.data,
        settings.out,
        per_class=settings.per_class,
        organic=settings.organic,
        val_fraction=settings.val_fraction,
        command=command,
    )
    print(f"wrote {count} images to {settings.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
