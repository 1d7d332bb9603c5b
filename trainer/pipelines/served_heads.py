"""``trainer train --mode heads --backbone-from DIR``: new heads on a served model's fine-tuned backbone.

Fine-tuning takes most of an hour here; new data labels (batteries, textiles) and a new calibration
need only new heads. The backbone is cut out of DIR's fp32 graph, features of every training image
(and its mirror) are cached, the heads are cross-fitted for out-of-fold predictions on which the
thresholds are chosen with a confidence margin, and the served heads are then trained on all the
training side (fit and calibration parts: the out-of-fold predictions replace the calibration
subset). The validation split is only scored.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sortline.manifest import TrainingRecord
from trainer.data.splits import Splits
from trainer.fit import cross_fit, frozen_features
from trainer.fit.served_backbone import cut_backbone, served_backbone
from trainer.release import calibrate, compose
from trainer.release.finalize import PreparedRelease

log = logging.getLogger(__name__)


def prepare(run: Any, splits: Splits, common: dict[str, Any]) -> tuple[PreparedRelease, TrainingRecord]:
    """Heads, thresholds and the joining export for ``run`` (a ``TrainRun`` with ``backbone_from``);
    ``common`` is what every training record holds (``trainer.pipelines.train.common_record``)."""
    cache = run.cache_dir or frozen_features.DEFAULT_CACHE_DIR
    backbone_path, _ = cut_backbone(run.backbone_from, cache)
    features = frozen_features.extract(
        splits.fit + splits.calib,
        cache,
        workers=run.workers,
        backbone=served_backbone(run.backbone_from, cache),
    )
    labels, keys = [s.label for s in features.samples], [s.key for s in features.samples]
    margin = run.margin
    oof = cross_fit.out_of_fold(features.features, labels, keys, run.heads, margin.folds)
    thresholds, calibration = calibrate.calibrate_with_margin(
        labels, (oof.p_organic, oof.material_probs, oof.p_hazard), target_purity=margin.target_purity,
        hazard_target_purity=margin.hazard_target_purity, z=margin.z,
    )  # fmt: skip
    calibration["data"] = (
        f"out-of-fold predictions on the {len(labels)} training-side images ({margin.folds} folds)"
    )
    trained = cross_fit.train_heads(features.features, labels, run.heads)

    def export(path: Path) -> dict[str, Any]:
        graph = compose.compose(backbone_path, trained, path)
        return compose.parity(backbone_path, graph, path, splits.val)

    prepared = PreparedRelease(export, compose.output_spec(trained), thresholds, calibration)
    return prepared, _record(run, common, features, margin)


def _record(
    run: Any, common: dict[str, Any], features: frozen_features.FeatureSet, margin: Any
) -> TrainingRecord:
    """Where the model came from: its backbone's model directory, the heads, the calibration rule."""
    return TrainingRecord(
        **common,
        seed=run.heads.seed,
        skipped_undecodable=len(features.skipped),
        heads=asdict(run.heads),
        backbone_from=str(run.backbone_from),
        calibration_rule=asdict(margin),
        augmentation="horizontal flip (features of both views, as the served graph averages them)",
        mirror_average=True,
    )
