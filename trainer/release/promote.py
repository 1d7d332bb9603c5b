"""``trainer promote``: put a verified model directory where the workers read theirs, then tell them.

The copy goes to a temporary sibling first and is swapped in by renames, so a worker never reads
a half-written directory: it sees the old files or the new ones (or, between the two renames, none,
and keeps serving its loaded model). Then a ``ModelPromoted`` event on ``sortline.models`` makes
every worker reload; a worker whose reload fails keeps its old model (and logs why).
"""

from __future__ import annotations

import logging
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pika

from sortline.connection import TlsFiles, connection_parameters
from sortline.manifest import ModelManifest
from sortline.messages import ModelPromoted
from sortline.provisioning import TopologyMode, prepare_exchanges
from sortline.registry import verified_manifest
from sortline.topology import MODEL_EVENTS_EXCHANGE

log = logging.getLogger(__name__)


def install(source: Path, target: Path) -> ModelManifest:
    """Copy ``source`` over ``target``, verified once, in the staging copy that becomes ``target``.

    Checking the copy rather than the source covers both a tampered source and a bad copy, and
    reads the (large) files once.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.new-{uuid.uuid4().hex[:8]}"
    retired = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    shutil.copytree(source, staging)
    try:
        manifest = verified_manifest(staging)
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)
    log.info("installed %s (%s) at %s", source, manifest.version, target)
    return manifest


def announce(
    amqp_url: str, manifest: ModelManifest, tls: TlsFiles | None = None, topology: TopologyMode = "declare"
) -> ModelPromoted:
    """Publish the promotion on ``sortline.models`` and wait for the broker's confirm."""
    event = ModelPromoted(
        version=manifest.version,
        onnx_sha256=manifest.onnx_sha256,
        promoted_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    connection = pika.BlockingConnection(connection_parameters(amqp_url, "trainer", "promote", tls))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        prepare_exchanges(channel, topology)  # the trainer role may only check (--topology check)
        channel.basic_publish(
            MODEL_EVENTS_EXCHANGE,
            "",
            event.to_json(),
            pika.BasicProperties(content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent),
        )
    finally:
        connection.close()
    return event
