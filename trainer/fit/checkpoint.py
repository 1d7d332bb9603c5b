"""Resumable training checkpoints: tensors and plain values only, loaded with ``weights_only=True``.

Written atomically (temporary file, then rename) so a run killed mid-write leaves the previous
checkpoint intact, which is what ``--resume`` picks up.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

LAST = "last.pt"
BEST = "best.pt"


def save(path: Path, state: dict[str, Any]) -> None:
    """Atomically write ``state`` to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None when there is none."""
    if not path.is_file():
        return None
    log.info("loading checkpoint %s", path)
    return torch.load(path, map_location="cpu", weights_only=True)
