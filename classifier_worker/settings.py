"""Classifier worker configuration: flags override SORTLINE_* environment variables override defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from sortline.messages import Identifier
from sortline.settings import METRICS_PORT_HELP, SortlineSettings


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
        0,
        ge=0,
        le=256,
        description="ONNX Runtime intra-op threads; 0 = the CPUs this process may use (its affinity and "
        "its container's CPU limit, not the host's cores).",
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
    max_decoded_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024 * 1024,
        le=4 * 1024**3,
        description="Decode budget: a frame whose decode would allocate more (estimated from its header: "
        "size, bit depth, channels, progressive or not, the reduced JPEG scale) is refused unread. "
        "Default 64 MiB: a 4K 8-bit PNG fits, a 16-bit 6300x6300 PNG does not.",
    )
    large_frame_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024 * 1024,
        le=4 * 1024**3,
        description="Frames whose decode needs more than this decode one at a time in a lane of their own, "
        "so they never hold up the decode threads the other frames need.",
    )
    large_frame_backlog: int = Field(
        4,
        ge=1,
        le=64,
        description="Large frames that may wait for their lane; beyond it one is refused (image-too-large), "
        "so a flood of them cannot fill the prefetch window.",
    )
    cameras: list[Identifier] = Field(
        [],
        max_length=1024,
        description="Cameras allowed to publish to this line (e.g. --cameras cam-1,cam-2); frames of any "
        "other camera are refused (camera-not-allowed). Empty: any camera.",
    )
    max_clock_ahead_ms: int = Field(
        5000,
        ge=0,
        le=3_600_000,
        description="How far a frame's capture time may lie ahead of this worker's clock; a frame further "
        "ahead is refused (bad-capture-time).",
    )
    max_frame_age_s: int = Field(
        86_400,
        ge=1,
        le=30 * 86_400,
        description="How old a frame's capture time may be; older frames are refused (bad-capture-time).",
    )
    dedup_window: int = Field(
        10_000,
        ge=0,
        le=1_000_000,
        description="Frame ids remembered per worker: a frame whose id (message_id) was decided or is in "
        "flight is acked and counted, not decided again (a camera re-sending after a lost confirm). "
        "0 turns it off.",
    )
    view_combination: Literal["mean", "log-mean"] = Field(
        "mean",
        description="How an item's views (items mode: up to K crops in one message) are combined before the "
        "cascade's thresholds: mean of probabilities, or log-mean (geometric). docs/belt.md has the "
        "measurement.",
    )
    review: bool = Field(
        True,
        description="Send copies of hard items to the line's review queue (sortline.review.<line>, bounded): "
        "those the model abstained on, shadow disagreements, and a random --review-audit-share.",
    )
    review_audit_share: float = Field(
        0.01, ge=0.0, le=1.0, description="Share of decided items sent to review at random, as an audit."
    )
    shadow: bool = Field(
        False,
        description="Run the registry's candidate version (trainer shadow) beside the serving model on "
        "--shadow-share of items, at low priority on one thread: its agreement is exported as metrics, its "
        "answers never become decisions. --model must be a registry.",
    )
    shadow_share: float = Field(
        0.1, gt=0.0, le=1.0, description="Share of items the shadow candidate looks at."
    )
    metrics_port: int = Field(9102, ge=0, le=65535, description=METRICS_PORT_HELP)
