"""``python -m bench``: one command that measures the classifier worker and prints JSON and a table.

Exit codes: 0 when the measurement ran (whether or not targets were met), 1 when it could not
run (no broker, a worker that died, a bad model), 2 for bad flags.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.broker import MEASUREMENT_FAILED, connect
from bench.frames import load_frames
from bench.machine import describe_machine
from bench.report import check_targets, compute_ratios, print_tables
from sortline.manifest import ModelIntegrityError, load_manifest
from sortline.settings import SortlineSettings, parse_cli, redact_url
from sortline_runtime.model import DEFAULT_MODEL_DIR

PROG = "python -m bench"
Section = Literal["raw", "pipeline", "latency", "multi-worker", "malformed", "naive"]
SECTIONS: tuple[str, ...] = get_args(Section)
BROKER_SECTIONS = {"pipeline", "latency", "multi-worker", "malformed"}


class BenchSettings(SortlineSettings):
    """Measure the classifier worker side by side in one run.

    (a) raw model img/s at each batch size, (b) one worker draining a pre-filled queue
    (decisions/s), (c) capture-to-decision latency at 50% of (b)'s rate, (d) the seed's way (two
    PyTorch eager models, batch 1), (e) several workers on one queue, (f) valid throughput with as
    many malformed frames mixed in. Prints JSON on stdout (or --json-out) and a table on stderr;
    targets are reported as met / not met, the exit code is 0 either way.
    """

    frames: int | None = Field(
        None, ge=2, le=1_000_000, description="Frames for (b) and (e). Default 2000 (quick 400)."
    )
    quick: bool = Field(False, description="Shorter timings everywhere (a smoke run).")
    json_out: Path | None = Field(None, description="Write the JSON here instead of stdout.")
    model: Path = Field(
        DEFAULT_MODEL_DIR, description="Model directory to serve: the committed models/default unless given."
    )
    variant: str = Field(
        "auto",
        pattern=r"^[a-z0-9_-]{1,32}$",
        description="Model file in every section, as the worker's --variant: auto (what the worker serves: "
        "int8 on CPUs when it costs <= 0.5 point), main (fp32) or a manifest variant name.",
    )
    workers_max: int = Field(2, ge=1, le=16, description="Workers on one queue in (e); 1 skips (e).")
    skip: list[Section] = Field([], description="Leave a section out (repeatable: --skip raw --skip naive).")
    batch_sizes: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        [1, 8, 16, 32], min_length=1, description="Batch sizes for (a), comma-separated (each 1 to 4096)."
    )
    point_seconds: float | None = Field(
        None, gt=0.0, le=3600.0, description="Seconds per point in (a). Default 2 (quick 1)."
    )
    latency_seconds: float | None = Field(
        None, gt=0.0, le=3600.0, description="Length of (c). Default 15 (quick 6)."
    )
    latency_fps: float | None = Field(
        None, gt=0.0, le=100_000.0, description="Publish rate of (c). Default: 50% of (b)'s decisions/s."
    )
    worker_args: str = Field(
        "",
        description="Extra flags for every worker process, one quoted string, e.g. "
        "--worker-args='--inference-threads 1 --max-batch 32'. Default: none (the worker's defaults).",
    )
    naive_seconds: float | None = Field(
        None, gt=0.0, le=3600.0, description="Length of (d). Default 20 (quick 6)."
    )


def resolve(args: BenchSettings) -> dict[str, Any]:
    """The settings as the JSON records them, with the defaults that depend on --quick filled in."""
    return {
        "frames": args.frames or (400 if args.quick else 2000),
        "quick": args.quick,
        "model": str(args.model),
        "workers_max": args.workers_max,
        "batch_sizes": list(args.batch_sizes),
        "point_seconds": args.point_seconds or (1.0 if args.quick else 2.0),
        "latency_seconds": args.latency_seconds or (6.0 if args.quick else 15.0),
        "latency_fps": args.latency_fps,
        "naive_seconds": args.naive_seconds or (6.0 if args.quick else 20.0),
        "variant": args.variant,
        "worker_args": [*shlex.split(args.worker_args), "--variant", args.variant],
        "skip": sorted(set(args.skip) | ({"multi-worker"} if args.workers_max < 2 else set())),
        "amqp_url": redact_url(args.amqp_url.get_secret_value()),
    }


class Runner:
    """Runs the sections in order, each with a progress bar, collecting their results."""

    def __init__(self, args: BenchSettings, settings: dict[str, Any], console: Console) -> None:
        self.args = args
        self.amqp_url = args.amqp_url.get_secret_value()
        self.settings = settings
        self.console = console
        self.frames = load_frames()
        self.input_size = load_manifest(args.model, verify=True).input.size

    def run(self, progress: Progress) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for section in SECTIONS:
            key = section.replace("-", "_")
            if section in self.settings["skip"]:
                results[key] = None
                continue
            try:
                results[key] = getattr(self, key)(progress, results)
            except MEASUREMENT_FAILED as error:  # keep the other sections; the exit code says it failed
                self.console.print(f"[red]{section}: {error}[/]")
                results[key] = {"error": str(error)}
        return results

    def raw(self, progress: Progress, _results: dict) -> dict:
        from bench.raw import measure_raw

        sizes = tuple(self.settings["batch_sizes"])
        task = progress.add_task("(a) raw model", total=len(sizes))
        result = measure_raw(
            self.args.model,
            self.settings["point_seconds"],
            sizes,
            lambda _: progress.advance(task),
            variant=self.settings["variant"],
        )
        return result

    def _throughput(self, progress: Progress, label: str, workers: int) -> dict:
        from bench.pipeline import measure_throughput

        count = self.settings["frames"]
        task = progress.add_task(label, total=count)
        return measure_throughput(
            self.amqp_url, self.args.model, self.frames, count, workers,
            lambda n: progress.update(task, completed=n), tuple(self.settings["worker_args"]),
        )  # fmt: skip

    def pipeline(self, progress: Progress, _results: dict) -> dict:
        return self._throughput(progress, "(b) pipeline, 1 worker", 1)

    def latency(self, progress: Progress, results: dict) -> dict:
        from bench.pipeline import measure_latency

        fps = self.settings["latency_fps"]
        if fps is None:
            pipeline = results.get("pipeline")
            fps = 0.5 * pipeline["decisions_per_s"] if pipeline else 20.0
        seconds = self.settings["latency_seconds"]
        task = progress.add_task(f"(c) latency at {fps:.1f} fps", total=int(fps * seconds))
        return measure_latency(
            self.amqp_url, self.args.model, self.frames, fps, seconds,
            lambda n: progress.update(task, completed=n), tuple(self.settings["worker_args"]),
        )  # fmt: skip

    def multi_worker(self, progress: Progress, _results: dict) -> dict:
        workers = self.settings["workers_max"]
        return self._throughput(progress, f"(e) pipeline, {workers} workers", workers)

    def malformed(self, progress: Progress, _results: dict) -> dict:
        from bench.malformed import measure_malformed

        # The figure: 1,000 malformed among as many valid frames, per mixed drain.
        count = min(self.settings["frames"], 1000)
        task = progress.add_task("(f) valid among malformed", total=count)
        return measure_malformed(
            self.amqp_url, self.args.model, self.frames, count,
            lambda n: progress.update(task, completed=n), tuple(self.settings["worker_args"]),
            rounds=2 if self.args.quick else 5,
        )  # fmt: skip

    def naive(self, progress: Progress, _results: dict) -> dict:
        from bench.naive import measure_naive

        task = progress.add_task("(d) naive (seed's way)", total=None)
        return measure_naive(
            self.frames, self.input_size, self.settings["naive_seconds"],
            lambda n: progress.update(task, completed=n),
        )  # fmt: skip


def check_broker(url: str) -> None:
    connect(url).close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_cli(BenchSettings, argv, PROG)
    settings = resolve(args)
    console = Console(stderr=True)
    started = datetime.now(UTC)
    try:
        model_version = load_manifest(args.model, verify=True).version
        if BROKER_SECTIONS - set(settings["skip"]):
            check_broker(args.amqp_url.get_secret_value())
        runner = Runner(args, settings, console)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            results = runner.run(progress)
    except (*MEASUREMENT_FAILED, ModelIntegrityError, OSError) as error:
        console.print(f"[red]bench: {error}[/]")
        return 1
    document: dict[str, Any] = {
        "benchmark": "sortline-bench",
        "schema_version": 1,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)]),
        "settings": settings,
        "machine": describe_machine(model_version),
        **results,
    }
    document["ratios"] = compute_ratios(document)
    document["targets"] = check_targets(document["ratios"])
    text = json.dumps(document, indent=2)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(text + "\n")
        console.print(f"JSON written to {args.json_out}")
    else:
        print(text)
    print_tables(document, console)
    failed = [key for key in SECTIONS if (document.get(key.replace("-", "_")) or {}).get("error")]
    if failed:
        console.print(f"[red]bench: could not measure {', '.join(failed)} (see the JSON)[/]")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
