"""A description of the machine and software the figures were measured on."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = "unknown", set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == "unknown":
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return model, flags


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe_machine(model_version: str | None) -> dict[str, Any]:
    """CPU, cores, load, library versions (read from metadata: nothing heavy is imported)."""
    cpu_model, flags = _cpuinfo()
    simd = [name for name in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile") if name in flags]
    return {
        "cpu_model": cpu_model,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "simd": simd,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": _version("onnxruntime"),
        "torch": _version("torch"),
        "timm": _version("timm"),
        "opencv": _version("opencv-python-headless") or _version("opencv-python"),
        "pika": _version("pika"),
        "model_version": model_version,
    }
