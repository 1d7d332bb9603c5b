"""A site's models from publication to retirement: publish, promote through the gate, roll back,
try in shadow. Each pointer change is announced, so running workers reload at once; workers that
were away read the registry when they reconnect."""

from __future__ import annotations

import logging

from sortline.manifest import ModelManifest
from sortline.registry import CANDIDATE, CURRENT, ModelRegistry, RegistryError, Version
from trainer.data.dataset import scan
from trainer.release.gate import gate, verdict_table
from trainer.release.promote import announce, install
from trainer.settings import PromoteSettings, PublishSettings, RollbackSettings, ShadowSettings

log = logging.getLogger(__name__)


class GateRefused(RegistryError):
    """The candidate scored worse than the current version; the message holds both sets of figures."""


def publish(settings: PublishSettings) -> Version:
    registry = ModelRegistry(settings.registry)
    version = registry.publish(settings.model, settings.evaluation)
    removed = registry.retain(settings.keep)
    print(f"published {version.manifest.version} as {version.name} in {settings.registry}")
    if removed:
        print(f"removed old versions: {', '.join(removed)}")
    return version


def promote(settings: PromoteSettings) -> ModelManifest:
    if settings.registry is None:
        manifest = install(settings.model, settings.to)
        print(f"installed {manifest.version} at {settings.to}")
    else:
        manifest = promote_in_registry(settings)
    _announce(settings, manifest, settings.announce)
    return manifest


def promote_in_registry(settings: PromoteSettings) -> ModelManifest:
    registry = ModelRegistry(settings.registry)
    candidate = registry.find(settings.model_version)
    current = registry.pointed(CURRENT)
    if current is not None and current.name != candidate.name and not settings.force:
        verdict = gate(candidate.path, current.path, scan(settings.gate_data), settings.gate_margin,
                       settings.gate_min_bin_items)  # fmt: skip
        table = verdict_table(verdict)
        if not verdict.passed:
            raise GateRefused(f"{candidate.name} refused: {'; '.join(verdict.reasons)}\n{table}")
        print(f"{candidate.name} passes the gate against {current.name}:\n{table}")
        details = {"gate": {"against": current.name, "margin": settings.gate_margin,
                            "candidate": verdict.candidate, "current": verdict.current}}  # fmt: skip
    else:
        details = None
    registry.point(CURRENT, candidate, "promote (forced, no gate)" if settings.force else "promote", details)
    print(f"current is now {candidate.name}")
    return candidate.manifest


def rollback(settings: RollbackSettings) -> ModelManifest:
    registry = ModelRegistry(settings.registry)
    back = registry.previous_current()
    registry.point(CURRENT, back, "rollback")
    print(f"current is back at {back.name}")
    _announce(settings, back.manifest, settings.announce)
    return back.manifest


def shadow(settings: ShadowSettings) -> None:
    registry = ModelRegistry(settings.registry)
    version = registry.find(settings.model_version) if settings.model_version else None
    registry.point(CANDIDATE, version, "shadow" if version else "end shadow")
    print(f"candidate is now {version.name}" if version else "no candidate: the shadow trial is over")
    current = registry.pointed(CURRENT)
    if current is not None:
        _announce(settings, current.manifest, settings.announce)


def _announce(settings, manifest: ModelManifest, enabled: bool) -> None:
    if enabled:
        announce(settings.amqp_url.get_secret_value(), manifest, settings.tls_files(), settings.topology)
        print(f"announced {manifest.version} on sortline.models")
