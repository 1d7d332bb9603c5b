"""Fine-tune the whole EfficientNet-Lite0 with both heads on cached, augmented images.

Why these choices: on two CPU cores a 224 px training step runs at ~20 img/s and a 160 px step at
~50 img/s, so most epochs run at ``image_size`` and the last ``final_epochs`` at the served size
(the "FixRes" correction: the network ends adapted to the resolution it is served at). Losses
are class-weighted (organic and metal are scarce next to glass), the material loss uses label
smoothing, the learning rate warms up linearly (random heads must not wreck the pretrained
backbone) and then follows a cosine. Model selection and early stopping use the calibration
subset, never the validation split. Every epoch is checkpointed; ``resume`` continues bit-for-bit
because each epoch's shuffling and augmentation are seeded from (seed, epoch, rank).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from sortline.labels import MATERIALS, ORGANIC
from sortline.manifest import InputSpec
from trainer.data.augment import make_batch
from trainer.fit import checkpoint
from trainer.fit.config import FinetuneConfig
from trainer.fit.distributed import DistInfo, broadcast_flag, shard
from trainer.fit.heads import balanced_weights, make_head
from trainer.model.cascade_net import CascadeNet

log = logging.getLogger(__name__)


class LogitsNet(nn.Module):
    """The served ``CascadeNet`` seen through its logits, for the losses (and DDP)."""

    def __init__(self, net: CascadeNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.net.backbone(image)
        return self.net.organic_head(features).reshape(-1), self.net.material_head(features)


def build_net(backbone: nn.Module, dropout: float) -> CascadeNet:
    """Trainable backbone + linear organic head + linear material head."""
    for parameter in backbone.parameters():
        parameter.requires_grad_(True)
    net = CascadeNet(backbone, make_head(1, dropout), make_head(len(MATERIALS), dropout))
    return net.to(memory_format=torch.channels_last)


def targets(labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(organic 0/1 float, material index or -1 when the label names no material)."""
    organic = np.array([label == ORGANIC for label in labels], dtype=np.float32)
    material = np.array([MATERIALS.index(lb) if lb in MATERIALS else -1 for lb in labels], dtype=np.int64)
    return organic, material


class CascadeLoss(nn.Module):
    """Class-weighted BCE for stage 1 plus class-weighted, label-smoothed CE for stage 2."""

    def __init__(self, organic: np.ndarray, material: np.ndarray, smoothing: float) -> None:
        super().__init__()
        share = float(np.clip(organic.mean(), 1e-3, 1 - 1e-3))
        self.bce = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([(1 - share) / share]))
        weights = balanced_weights(material[material >= 0], len(MATERIALS))
        self.ce = nn.CrossEntropyLoss(weight=weights, ignore_index=-1, label_smoothing=smoothing)

    def forward(self, logits: tuple[torch.Tensor, torch.Tensor], org: torch.Tensor, mat: torch.Tensor):
        organic_logit, material_logits = logits
        loss = self.bce(organic_logit, org)
        if bool((mat >= 0).any()):
            loss = loss + self.ce(material_logits, mat)
        return loss


def make_optimizer(net: CascadeNet, cfg: FinetuneConfig) -> torch.optim.Optimizer:
    """AdamW; the new heads learn faster than the pretrained backbone; no decay on norms and biases."""
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, parameter in net.named_parameters():
        lr = cfg.lr if name.startswith("backbone.") else cfg.head_lr
        decay = 0.0 if parameter.ndim <= 1 else cfg.weight_decay
        groups.setdefault((lr, decay), []).append(parameter)
    return torch.optim.AdamW(
        [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]
    )


def lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to zero at ``total`` steps."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


@torch.inference_mode()
def predict_cached(
    net: CascadeNet, images: np.ndarray, spec: InputSpec, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """(p_organic, material_probs) of un-augmented cached images at the served size."""
    net.eval()
    p_parts, m_parts = [], []
    for start in range(0, len(images), batch_size):
        idx = range(start, min(len(images), start + batch_size))
        p, probs = net(make_batch(images, idx, spec, spec.size, augment=False))
        p_parts.append(p.numpy())
        m_parts.append(probs.numpy())
    if not p_parts:
        return np.zeros(0, np.float32), np.zeros((0, len(MATERIALS)), np.float32)
    return np.concatenate(p_parts), np.concatenate(m_parts)


@dataclass
class TrainData:
    """Cached images and labels of one part of the split."""

    images: np.ndarray
    labels: list[str]


@dataclass
class RunState:
    """What a checkpoint carries besides the weights."""

    epoch: int = 0
    step: int = 0
    best_score: float = -math.inf
    best_epoch: int = -1
    history: list[dict[str, Any]] | None = None


def calib_figures(net: CascadeNet, data: TrainData, spec: InputSpec) -> dict[str, float]:
    """Stage-1 and material accuracy on the calibration subset; ``score`` is their mean."""
    p, probs = predict_cached(net, data.images, spec)
    organic, material = targets(data.labels)
    stage1 = float(((p >= 0.5) == (organic > 0.5)).mean()) if len(p) else 0.0
    rows = material >= 0
    mat_acc = float((probs[rows].argmax(1) == material[rows]).mean()) if rows.any() else 0.0
    return {"calib_stage1_acc": stage1, "calib_material_acc": mat_acc, "score": 0.5 * (stage1 + mat_acc)}


def _autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """fp16 mixed precision on CUDA; full precision elsewhere (CPU bf16 is slower on AVX2)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


@dataclass
class Trainer:
    """One fine-tuning run: model, optimiser, schedule, data, checkpoints."""

    net: CascadeNet
    cfg: FinetuneConfig
    spec: InputSpec
    train: TrainData
    calib: TrainData
    run_dir: Path
    info: DistInfo
    device: torch.device

    def __post_init__(self) -> None:
        self.net.to(self.device)
        self.model: nn.Module = LogitsNet(self.net)
        if self.info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        organic, material = targets(self.train.labels)
        self.organic_t, self.material_t = torch.from_numpy(organic), torch.from_numpy(material)
        self.loss_fn = CascadeLoss(organic, material, self.cfg.label_smoothing).to(self.device)
        self.optimizer = make_optimizer(self.net, self.cfg)
        per_rank = len(shard(range(len(self.train.labels)), self.info))
        self.steps_per_epoch = max(1, math.ceil(per_rank / self.cfg.batch_size))
        total = self.steps_per_epoch * self.cfg.epochs
        factor = lr_lambda(min(self.cfg.warmup_steps, total // 3 + 1), total)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.device.type == "cuda")
        self.state = RunState(history=[])
        self.ema: AveragedModel | None = None
        if self.cfg.ema_decay > 0:
            self.ema = AveragedModel(
                self.net, multi_avg_fn=get_ema_multi_avg_fn(self.cfg.ema_decay), use_buffers=True
            )

    @property
    def selected_net(self) -> CascadeNet:
        """The weights that are scored and kept: the moving average when there is one."""
        return self.ema.module if self.ema is not None else self.net  # type: ignore[return-value]

    def _epoch_order(self, epoch: int) -> list[int]:
        """This rank's sample order for an epoch; depends only on (seed, epoch, rank)."""
        generator = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        order = torch.randperm(len(self.train.labels), generator=generator).tolist()
        torch.manual_seed(self.cfg.seed * 100_003 + epoch * 101 + self.info.rank)
        return shard(order, self.info)

    def _step(self, idx: list[int], size: int) -> tuple[float, int, int]:
        """One optimiser step; returns (loss, material hits, material rows)."""
        x = make_batch(self.train.images, idx, self.spec, size, augment=True).to(self.device)
        org, mat = self.organic_t[idx].to(self.device), self.material_t[idx].to(self.device)
        with _autocast(self.device):
            logits = self.model(x)
            loss = self.loss_fn(logits, org, mat)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.net)
        rows = mat >= 0
        hits = int((logits[1].detach().argmax(1)[rows] == mat[rows]).sum())
        return float(loss.detach()), hits, int(rows.sum())

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over this rank's shard with a live progress bar (rank 0)."""
        self.net.train()
        order, size = self._epoch_order(epoch), self.cfg.size_at(epoch)
        total_loss, hits, rows, steps = 0.0, 0, 0, 0
        desc = f"epoch {epoch + 1}/{self.cfg.epochs} @{size}px"
        with tqdm(total=len(order), desc=desc, unit="img", disable=not self.info.is_main) as bar:
            for start in range(0, len(order), self.cfg.batch_size):
                idx = order[start : start + self.cfg.batch_size]
                loss, h, r = self._step(idx, size)
                total_loss, hits, rows, steps = total_loss + loss, hits + h, rows + r, steps + 1
                self.state.step += 1
                bar.update(len(idx))
                bar.set_postfix(loss=f"{total_loss / steps:.3f}", acc=f"{hits / max(1, rows):.3f}")
        return {"train_loss": total_loss / max(1, steps), "train_material_acc": hits / max(1, rows)}

    def checkpoint_state(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "run": asdict(self.state),
            "config": asdict(self.cfg),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint written by ``checkpoint_state``."""
        self.net.load_state_dict(state["net"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.state = RunState(**state["run"])

    def _end_epoch(self, epoch: int, figures: dict[str, float]) -> bool:
        """Rank 0: record, checkpoint (last and best); returns whether to stop early."""
        self.state.epoch = epoch + 1
        assert self.state.history is not None
        self.state.history.append({"epoch": epoch + 1, **{k: round(v, 5) for k, v in figures.items()}})
        if figures["score"] > self.state.best_score:
            self.state.best_score, self.state.best_epoch = figures["score"], epoch + 1
            checkpoint.save(self.run_dir / checkpoint.BEST, {"net": self.selected_net.state_dict()})
        checkpoint.save(self.run_dir / checkpoint.LAST, self.checkpoint_state())
        log.info("epoch %d: %s (best epoch %d)", epoch + 1, figures, self.state.best_epoch)
        return epoch + 1 - self.state.best_epoch >= self.cfg.patience

    def fit(self, until: int | None = None) -> RunState:
        """Train from the current state to ``cfg.epochs`` (or ``until``, or an early stop).

        The best weights (on the calibration subset) are restored at the end.
        """
        for epoch in range(self.state.epoch, min(until or self.cfg.epochs, self.cfg.epochs)):
            figures = self.train_epoch(epoch)
            stop = False
            if self.info.is_main:
                if self.calib.labels:
                    figures.update(calib_figures(self.selected_net, self.calib, self.spec))
                else:  # no calibration images (tiny data): select on the training loss
                    figures["score"] = -figures["train_loss"]
                stop = self._end_epoch(epoch, figures)
            if broadcast_flag(stop, self.info):
                log.info("early stop after epoch %d", epoch + 1)
                break
        best = checkpoint.load(self.run_dir / checkpoint.BEST) if self.info.is_main else None
        if best is not None:
            self.net.load_state_dict(best["net"])
        self.net.eval()
        return self.state
