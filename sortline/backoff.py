"""Reconnect delays: exponential with full jitter, so a fleet of agents does not reconnect in step."""

from __future__ import annotations

import random
from collections.abc import Iterator


def backoff_delays(
    initial: float = 0.2, cap: float = 30.0, rng: random.Random | None = None
) -> Iterator[float]:
    """Endless delays: the n-th is uniform in [0, min(cap, initial * 2**n)]."""
    rng = rng or random.Random()
    ceiling = initial
    while True:
        yield rng.uniform(0.0, ceiling)
        ceiling = min(cap, ceiling * 2.0)
