"""``python -m bench``: one command that measures the classifier worker and prints JSON and a table.

Exit codes: 0 when the measurement ran (whether or not targets were met), 1 when it could not
run (no broker, a worker that died, a bad model), 2 for bad flags.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.broker import BenchError, connect
from bench.frames import load_frames
from bench.machine import describe_machine
from bench.report import check_targets, compute_ratios, print_tables
from sortline.manifest import ModelIntegrityError, load_manifest
from sortline.settings import DEFAULT_AMQP_URL, redact_url
from sortline_runtime.model import DEFAULT_MODEL_DIR

SECTIONS = ("raw", "pipeline", "latency", "multi-worker", "malformed", "naive")
BROKER_SECTIONS = {"pipeline", "latency", "multi-worker", "malformed"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure the classifier worker side by side in one run: (a) raw model img/s at batch "
        "1/8/16/32, (b) one worker draining a pre-filled queue (decisions/s), (c) capture-to-decision "
        "latency at 50% of (b)'s rate, (d) the seed's way (two PyTorch eager models, batch 1), "
        "(e) several workers on one queue, (f) valid throughput with as many malformed frames mixed in. "
        "Prints JSON on stdout (or --json-out) and a table on stderr; "
        "targets are reported as met / not met, the exit code is 0 either way.",
    )
    parser.add_argument("--frames", type=int, help="Frames for (b) and (e). Default 2000 (quick 400).")
    parser.add_argument("--quick", action="store_true", help="Shorter timings everywhere (a smoke run).")
    parser.add_argument("--json-out", type=Path, help="Write the JSON here instead of stdout.")
    parser.add_argument(
        "--model",
        type=Path,
        default=DEFAULT_MODEL_DIR,
        help="Model directory to serve. Default: models/default.",
    )
    parser.add_argument(
        "--variant",
        default="auto",
        help="Model file in every section, as the worker's --variant: auto (default, what the worker "
        "serves: int8 on CPUs when it costs <= 0.5 point), main (fp32) or a manifest variant name.",
    )
    parser.add_argument(
        "--workers-max", type=int, default=2, help="Workers on one queue in (e), default 2; 1 skips (e)."
    )
    parser.add_argument(
        "--amqp-url",
        default=os.environ.get("AMQP_URL") or os.environ.get("SORTLINE_AMQP_URL") or DEFAULT_AMQP_URL,
        help="RabbitMQ URL. Default: $AMQP_URL, else $SORTLINE_AMQP_URL, else the local broker "
        "(amqp://localhost:5672/ as guest).",
    )
    parser.add_argument(
        "--skip", action="append", choices=SECTIONS, default=[], help="Leave a section out (repeatable)."
    )
    parser.add_argument(
        "--batch-sizes", default="1,8,16,32", help="Batch sizes for (a), comma-separated. Default 1,8,16,32."
    )
    parser.add_argument("--point-seconds", type=float, help="Seconds per point in (a). Default 2 (quick 1).")
    parser.add_argument("--latency-seconds", type=float, help="Length of (c). Default 15 (quick 6).")
    parser.add_argument(
        "--latency-fps", type=float, help="Publish rate of (c). Default: 50%% of (b)'s decisions/s."
    )
    parser.add_argument(
        "--worker-args",
        default="",
        help="Extra flags for every worker process, one quoted string, e.g. "
        "--worker-args='--inference-threads 1 --max-batch 32'. Default: none (the worker's defaults).",
    )
    parser.add_argument("--naive-seconds", type=float, help="Length of (d). Default 20 (quick 6).")
    return parser


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """Defaults that depend on --quick, checked."""
    settings = {
        "frames": args.frames or (400 if args.quick else 2000),
        "quick": args.quick,
        "model": str(args.model),
        "workers_max": args.workers_max,
        "batch_sizes": [int(b) for b in args.batch_sizes.split(",") if b.strip()],
        "point_seconds": args.point_seconds or (1.0 if args.quick else 2.0),
        "latency_seconds": args.latency_seconds or (6.0 if args.quick else 15.0),
        "latency_fps": args.latency_fps,
        "naive_seconds": args.naive_seconds or (6.0 if args.quick else 20.0),
        "variant": args.variant,
        "worker_args": [*shlex.split(args.worker_args), "--variant", args.variant],
        "skip": sorted(set(args.skip) | ({"multi-worker"} if args.workers_max < 2 else set())),
        "amqp_url": redact_url(args.amqp_url),
    }
    if settings["frames"] < 2 or not settings["batch_sizes"] or min(settings["batch_sizes"]) < 1:
        raise ValueError("--frames must be >= 2 and --batch-sizes positive integers")
    return settings


class Runner:
    """Runs the sections in order, each with a progress bar, collecting their results."""

    def __init__(self, args: argparse.Namespace, settings: dict[str, Any], console: Console) -> None:
        self.args = args
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
            except BenchError as error:  # keep the other sections; the exit code says it failed
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
            self.args.amqp_url, self.args.model, self.frames, count, workers,
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
            self.args.amqp_url, self.args.model, self.frames, fps, seconds,
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
            self.args.amqp_url, self.args.model, self.frames, count,
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
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = resolve(args)
    except ValueError as error:
        parser.error(str(error))
    console = Console(stderr=True)
    started = datetime.now(UTC)
    try:
        model_version = load_manifest(args.model, verify=True).version
        if BROKER_SECTIONS - set(settings["skip"]):
            check_broker(args.amqp_url)
        runner = Runner(args, settings, console)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            results = runner.run(progress)
    except (BenchError, ModelIntegrityError, OSError) as error:
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
