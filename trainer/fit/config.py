"""The settings of each fitting step, as plain dataclasses: their defaults are the trainer's defaults.

Kept free of torch so that ``trainer --help`` and the CLI settings (``trainer.settings``), which
take their defaults from here, stay fast to import.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FinetuneConfig:
    """Optimisation settings of full fine-tuning."""

    epochs: int = 16
    image_size: int = 160
    final_size: int = 224
    final_epochs: int = 3
    batch_size: int = 32
    lr: float = 4e-4
    head_lr: float = 2e-3
    weight_decay: float = 1e-2
    label_smoothing: float = 0.1
    dropout: float = 0.2
    warmup_steps: int = 150
    patience: int = 5
    seed: int = 0
    # Exponential moving average of the weights, updated every step; 0 turns it off. When on, the
    # average is what is scored, selected and exported: it smooths the epoch-to-epoch noise that
    # otherwise decides which single epoch ships (+0.8 point of material accuracy here, NOTES.md).
    ema_decay: float = 0.998

    def size_at(self, epoch: int) -> int:
        """Training resolution of an epoch (0-based)."""
        return self.final_size if epoch >= self.epochs - self.final_epochs else self.image_size


@dataclass(frozen=True)
class HeadConfig:
    """Optimisation settings of both heads."""

    epochs: int = 60
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 5e-2
    dropout: float = 0.5
    hidden: int = 512
    seed: int = 0


@dataclass(frozen=True)
class QatConfig:
    """Settings of the quantization-aware steps."""

    steps: int = 150  # about one epoch of the default data at batch 32
    batch_size: int = 32
    lr: float = 2e-5  # a nudge: the float model is finished; only rounding is being absorbed
    observe_steps: int = 20  # ranges settle before rounding starts
    # Only the backbone learns: the pipeline refits the heads on it afterwards. (Refitted heads
    # trained here, on augmented images with smoothed targets, lost 1.9 points and their calibration.)
    train_heads: bool = False
    label_smoothing: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class MarginConfig:
    """Out-of-fold calibration with a confidence margin (heads on a served backbone)."""

    folds: int = 5  # every training image scored by heads trained on the other 4/5
    target_purity: float = 0.97  # every recyclable bin and organic
    hazard_target_purity: float = 0.95
    z: float = 1.645  # one-sided 95% Wilson lower bound on each bin's purity
