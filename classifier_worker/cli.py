"""``classifier-worker``: entry point; exit codes 0 (stopped cleanly), 2 (bad flags or model, refused
credentials, a metrics port in use)."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence
from contextlib import ExitStack

from classifier_worker.consumer import BrokerRefused
from classifier_worker.health import worker_health
from classifier_worker.service import build_worker, load_model
from classifier_worker.settings import WorkerSettings
from sortline.health import serve_metrics
from sortline.manifest import ModelIntegrityError
from sortline.settings import configure_logging, parse_cli
from sortline_runtime.model import DEFAULT_MODEL_DIR

log = logging.getLogger("classifier_worker")


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_cli(WorkerSettings, argv, prog="classifier-worker")
    configure_logging(settings.log_level, settings.log_format)
    with ExitStack() as stack:
        try:
            worker = stack.enter_context(build_worker(settings, load_model(settings)))
        except (ModelIntegrityError, ValueError, OSError) as error:
            model_dir = settings.model or DEFAULT_MODEL_DIR
            print(f"classifier-worker: cannot load model from {model_dir}: {error}", file=sys.stderr)
            return 2
        except ImportError as error:
            print(f"classifier-worker: --decode device needs torch and torchvision: {error}", file=sys.stderr)
            return 2
        serve_metrics("classifier-worker", settings.metrics_port, worker.registry, worker_health(worker))
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: worker.stop.set())
        try:
            worker.run()
        except BrokerRefused as error:
            print(f"classifier-worker: {error}", file=sys.stderr)
            return 2
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
