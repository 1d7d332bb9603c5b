"""``python -m bench.decode_memory``: the worker's decode-cost estimate against what decoding allocates.

The worker refuses a frame unread when :func:`sortline_runtime.imaging.decode_cost_bytes` says its
decode would exceed ``--max-decoded-bytes``. This measures, for frames of one size in each format,
the growth of peak RSS of a fresh process while OpenCV decodes the frame the way the worker does
(reduced JPEG scale included), beside the estimate. Prints JSON on stdout and a table on stderr.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from sortline_runtime.imaging import decode_cost_bytes, decode_frame, read_header

MIB = 2**20
#: The model's input size: JPEGs are read at the coarsest scale that keeps this short side.
TARGET_SIZE = 224


def write_frames(folder: Path, width: int = 4000, height: int = 3000) -> dict[str, Path]:
    """The same smooth content in each format (noise would make PNGs unrealistically large)."""
    rng = np.random.default_rng(0)
    image = cv2.resize(rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8), (width, height))
    encodings = {
        "png-16bit": (".png", image.astype(np.uint16) * 257, [cv2.IMWRITE_PNG_COMPRESSION, 1]),
        "png-8bit": (".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1]),
        "jpeg-progressive": (".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        "jpeg-baseline": (".jpg", image, []),
    }
    paths = {}
    for name, (ext, pixels, params) in encodings.items():
        paths[name] = folder / f"{name}{ext}"
        paths[name].write_bytes(cv2.imencode(ext, pixels, params)[1].tobytes())
    return paths


def peak_rss_kib() -> int:
    """This process's peak RSS (VmHWM). Not ``getrusage``: Linux carries ``ru_maxrss`` over ``exec``
    from the parent, so a child started by a process holding big images would report their size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise OSError("no VmHWM in /proc/self/status")


def measure_one(path: Path) -> dict[str, float]:
    """In this (fresh) process: decode ``path`` as the worker does; peak RSS growth and the estimate."""
    body = path.read_bytes()
    header = read_header(body)
    before = peak_rss_kib()
    decode_frame(body, target_size=TARGET_SIZE, max_pixels=10**9)
    grown_kib = peak_rss_kib() - before
    return {
        "width": header.width,
        "height": header.height,
        "body_mib": round(len(body) / MIB, 2),
        "rss_growth_mib": round(grown_kib / 1024, 1),
        "estimate_mib": round(decode_cost_bytes(header, TARGET_SIZE) / MIB, 1),
    }


def measure_in_fresh_process(path: Path) -> str:
    command = [sys.executable, "-m", "bench.decode_memory", "--one", str(path)]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(measure_one(Path(sys.argv[2]))))
        return 0
    with tempfile.TemporaryDirectory() as folder:
        frames = write_frames(Path(folder))
        results = {name: json.loads(measure_in_fresh_process(path)) for name, path in frames.items()}
    table = Table(title="Decode cost: estimate vs peak RSS growth of a fresh process")
    for column in ("frame", "size", "body MiB", "RSS growth MiB", "estimate MiB"):
        table.add_column(column, justify="left" if column == "frame" else "right")
    for name, r in results.items():
        table.add_row(name, f"{r['width']}x{r['height']}", str(r["body_mib"]), str(r["rss_growth_mib"]),
                      str(r["estimate_mib"]))  # fmt: skip
    Console(stderr=True).print(table)
    print(json.dumps({"target_size": TARGET_SIZE, "frames": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
