"""A tiny trainable backbone and in-memory data for fast fine-tuning tests (no pretrained weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from sortline.labels import MATERIALS
from sortline.manifest import InputSpec
from trainer.fit.config import FinetuneConfig
from trainer.fit.distributed import DistInfo
from trainer.fit.finetune import TrainData, Trainer, build_net
from trainer.model.backbone import FEATURE_DIM

SIZE = 32
SPEC = InputSpec(size=SIZE)
LABELS = ["organic", *MATERIALS]


def tiny_backbone() -> nn.Module:
    """Conv, pool, project to the real feature width so the real heads fit."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, FEATURE_DIM),
    )


def tiny_data(per_label: int = 4, seed: int = 0) -> TrainData:
    """Each label a different mean colour, plus noise."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for k, label in enumerate(LABELS):
        for _ in range(per_label):
            base = np.array([(k * 37) % 256, (k * 91) % 256, (k * 53) % 256], dtype=np.int16)
            noise = rng.integers(-20, 21, size=(SIZE, SIZE, 3))
            images.append(np.clip(base + noise, 0, 255).astype(np.uint8))
            labels.append(label)
    return TrainData(np.stack(images), labels)


def tiny_trainer(
    run_dir: Path, epochs: int = 2, info: DistInfo | None = None, ema_decay: float = 0.0
) -> Trainer:
    """A seeded trainer on the tiny backbone and data."""
    cfg = FinetuneConfig(
        epochs=epochs,
        image_size=SIZE,
        final_size=SIZE,
        final_epochs=0,
        batch_size=8,
        warmup_steps=2,
        patience=99,
        ema_decay=ema_decay,
    )
    torch.manual_seed(cfg.seed)
    net = build_net(tiny_backbone(), cfg.dropout)
    return Trainer(
        net, cfg, SPEC, tiny_data(), tiny_data(2, seed=1), run_dir, info or DistInfo(), torch.device("cpu")
    )


def fingerprint(module: nn.Module) -> float:
    """Sum of all parameters: equal only if training went the same way."""
    return float(sum(p.detach().double().sum() for p in module.parameters()))
