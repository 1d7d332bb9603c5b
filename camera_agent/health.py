"""The camera agent's health checks (served by :mod:`sortline.health` on its metrics port).

- liveness ``capture``: the source keeps giving frames. A camera or stream that hangs without an
  error fails it (a restart reopens the source); a replay waiting for room in a full buffer is
  waiting for the broker, which the readiness check reports, so it does not count as stuck;
- readiness ``broker``: a channel to the broker is open, so captured frames can be published.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sortline.health import Health

if TYPE_CHECKING:
    from camera_agent.agent import CameraAgent

#: The longest a source may go without a frame, at any frame rate.
CAPTURE_STALL_SECONDS = 20.0


def agent_health(agent: CameraAgent) -> Health:
    stale = agent.capture_heartbeat.check("the capture loop", capture_stall_seconds(agent.settings.fps))

    def capturing() -> str | None:
        if len(agent.buffer) >= agent.settings.buffer_frames:
            return None  # blocked on the broker, not on the source
        return stale()

    def connected() -> str | None:
        return None if agent.publisher.connected else "not connected to the broker"

    return Health(live={"capture": capturing}, ready={"broker": connected})


def capture_stall_seconds(fps: float) -> float:
    """Twenty frame intervals, at least :data:`CAPTURE_STALL_SECONDS` (a slow camera is not stuck)."""
    return max(CAPTURE_STALL_SECONDS, 20.0 / fps) if fps > 0 else CAPTURE_STALL_SECONDS
