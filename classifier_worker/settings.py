"""Classifier worker configuration: flags override SORTLINE_* environment variables override defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from sortline.messages import Identifier
from sortline.settings import SortlineSettings


class WorkerSettings(SortlineSettings):
    """classifier-worker: consume a line's frames in micro-batches and publish one decision per frame."""

    model: Path | None = Field(
        None, description="Model directory (manifest.json + ONNX). Default: the model committed in the repo."
    )
    variant: str = Field(
        "auto",
        pattern=r"^[a-z0-9_-]{1,32}$",
        description="Model file to serve: main (the fp32 file), a variant listed in the manifest "
        "(e.g. int8, fp16), or auto: int8 on CPUs, fp16 on GPUs, when its measured accuracy cost is within "
        "0.5 point, else main.",
    )
    line_id: Identifier = Field("line-1", description="Sorting line whose frames queue this worker serves.")
    max_batch: int = Field(16, ge=1, le=256, description="A batch closes when it holds this many frames ...")
    max_delay_ms: float = Field(
        5.0, ge=0.0, le=1000.0, description="... or this long after its first frame arrived, whichever first."
    )
    prefetch: int = Field(
        64,
        ge=1,
        le=4096,
        description="Frames the broker may hand over before they are acked (keeps the model fed).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="Where the model runs: cuda (GPU via onnxruntime-gpu), cpu, or auto (GPU if present).",
    )
    decode: Literal["auto", "cpu", "device"] = Field(
        "auto",
        description="Where JPEGs are decoded: cpu (OpenCV in --decode-threads), device (each batch with "
        "torchvision on the model's device: nvJPEG on a GPU; needs the gpu extra), or auto (device when "
        "the model runs on a GPU and torch sees it, else cpu).",
    )
    decode_threads: int = Field(
        2, ge=1, le=64, description="Threads decoding JPEGs (OpenCV releases the GIL)."
    )
    inference_threads: int = Field(
        0, ge=0, le=256, description="ONNX Runtime intra-op threads; 0 = one per core."
    )
    inference_spin: bool = Field(
        False,
        description="Let ONNX Runtime threads busy-wait between operators. Off by default: decode threads "
        "share the cores, and on 2 cores spinning cost 26% more CPU per decision for 6% less throughput.",
    )
    max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024, description="Larger frames are dead-lettered unread."
    )
    max_pixels: int = Field(
        40_000_000,
        ge=1024,
        le=1_000_000_000,
        description="Frames whose header claims more pixels are refused.",
    )
    metrics_port: int = Field(9102, ge=0, le=65535, description="Port of /metrics; 0 disables it.")
