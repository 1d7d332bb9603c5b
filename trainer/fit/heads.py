"""Train the two heads on frozen backbone features: heads mode, and the refit after fine-tuning.

Each head is a small MLP (1280 -> 512 -> out, ReLU, dropout); on the pretrained backbone it beat a
linear head (material accuracy ~0.90 vs ~0.87) and was the only one to reach 0.97 purity in every
recyclable bin within the abstention cap. Stage 1 (organic vs not) learns from every image;
stage 2 (six materials) only from images whose label is a material. Both use class-balanced
loss weights because organic and trash are scarce next to glass, AdamW weight decay plus
dropout against over-fitting, and a fixed seed.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from sortline.labels import HAZARD_LABELS, MATERIALS, ORGANIC, material_target
from trainer.fit.config import HeadConfig
from trainer.model.backbone import FEATURE_DIM

log = logging.getLogger(__name__)


def make_head(out_features: int, dropout: float, hidden: int = 0) -> nn.Sequential:
    """Dropout + linear layer (or a one-hidden-layer MLP when ``hidden`` > 0).

    Dropout is an identity in eval mode and in the exported graph.
    """
    if hidden <= 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(FEATURE_DIM, out_features))
    return nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(FEATURE_DIM, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, out_features),
    )


def balanced_weights(targets: np.ndarray, n_classes: int) -> torch.Tensor:
    """n / (k * count_c) per class, so each class carries the same total weight."""
    counts = np.bincount(targets, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, len(targets) / (n_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def _fit(head: nn.Module, x: np.ndarray, y: np.ndarray, loss_fn: nn.Module, cfg: HeadConfig) -> float:
    """Mini-batch AdamW on (x, y); returns the last epoch's mean loss."""
    generator = torch.Generator().manual_seed(cfg.seed)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, cfg.epochs))
    head.train()
    epoch_loss = float("nan")
    for _ in range(cfg.epochs):
        order = torch.randperm(len(inputs), generator=generator)
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(head(inputs[idx]), targets[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        scheduler.step()
        epoch_loss = total / max(1, len(order))
    head.eval()
    return epoch_loss


def _views(features: np.ndarray, labels: list[str]) -> tuple[np.ndarray, list[str]]:
    """Both stored views (plain, flipped) of each image as separate training rows."""
    x = features.reshape(-1, features.shape[-1])
    return x, [label for label in labels for _ in range(features.shape[1])]


def _binary_head(
    features: np.ndarray, labels: list[str], positive: frozenset[str], cfg: HeadConfig, seed: int
) -> tuple[nn.Module, float, float]:
    """One logit, positive for ``positive`` labels, class-balanced; (head, positive share, loss)."""
    torch.manual_seed(seed)
    x, rows = _views(features, labels)
    y = np.array([label in positive for label in rows], dtype=np.float32)
    if y.min() == y.max():
        raise ValueError(f"a {'/'.join(sorted(positive))} head needs positive and negative training images")
    head = make_head(1, cfg.dropout, cfg.hidden)
    pos_weight = torch.tensor([(1.0 - y.mean()) / y.mean()], dtype=torch.float32)
    bce = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    loss = _fit(head, x, y, lambda out, t: bce(out.reshape(-1), t), cfg)
    return head, float(y.mean()), loss


def train_organic_head(features: np.ndarray, labels: list[str], cfg: HeadConfig) -> nn.Module:
    """Stage-1 head: one logit, positive = organic; every other label (recyclable, materials) negative."""
    head, share, loss = _binary_head(features, labels, frozenset({ORGANIC}), cfg, cfg.seed)
    log.info("organic head: %d images (%.1f%% organic), final loss %.4f", len(labels), 100 * share, loss)
    return head


def has_hazard_labels(labels: list[str]) -> bool:
    """Whether the data can teach a hazard head (it holds hazard-labelled images)."""
    return any(label in HAZARD_LABELS for label in labels)


def train_hazard_head(features: np.ndarray, labels: list[str], cfg: HeadConfig) -> nn.Module:
    """Hazard head: one logit, positive = battery; every other label negative (checked first)."""
    head, share, loss = _binary_head(features, labels, frozenset(HAZARD_LABELS), cfg, cfg.seed + 2)
    log.info("hazard head: %d images (%.1f%% hazard), final loss %.4f", len(labels), 100 * share, loss)
    return head


def train_material_head(features: np.ndarray, labels: list[str], cfg: HeadConfig) -> nn.Module:
    """Stage-2 head: six logits in ``MATERIALS`` order, trained on images with a material target
    (``sortline.labels.material_target``: textiles and batteries teach ``trash``)."""
    torch.manual_seed(cfg.seed + 1)
    keep = [i for i, label in enumerate(labels) if material_target(label) is not None]
    if not keep:
        raise ValueError("stage 2 needs images labelled with a material")
    x, rows = _views(features[keep], [labels[i] for i in keep])
    y = np.array([MATERIALS.index(material_target(label) or "") for label in rows], dtype=np.int64)
    head = make_head(len(MATERIALS), cfg.dropout, cfg.hidden)
    loss_fn = nn.CrossEntropyLoss(weight=balanced_weights(y, len(MATERIALS)))
    loss = _fit(head, x, y, loss_fn, cfg)
    log.info("material head: %d rows, final loss %.4f", len(y), loss)
    return head


def head_outputs(
    organic_head: nn.Module, material_head: nn.Module, features: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(p_organic [N], material_probs [N, 6]) of plain-view features, as the exported model computes them."""
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(features))
        p = torch.sigmoid(organic_head(x)).reshape(-1)
        probs = torch.softmax(material_head(x), dim=1)
    return p.numpy(), probs.numpy()


def sigmoid_output(head: nn.Module, features: np.ndarray) -> np.ndarray:
    """[N] probabilities of a one-logit head on plain-view features."""
    with torch.inference_mode():
        return torch.sigmoid(head(torch.from_numpy(np.ascontiguousarray(features)))).reshape(-1).numpy()
