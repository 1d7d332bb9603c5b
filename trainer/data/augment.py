"""Augmentation that fits a belt camera, on uint8 image tensors (torchvision.transforms.v2).

Items lie on a belt in any orientation, at varying distance from the lens, under lights that drift,
sometimes moving fast enough to blur; TrashNet's photos all have a white background, the belt
does not. So: random resized crops, both flips, rotation, colour and brightness jitter, blur, and
a background swap that replaces near-white background pixels by a random belt-like colour.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.transforms import v2

from sortline.manifest import InputSpec


class BackgroundSwap(torch.nn.Module):
    """Replace near-white, low-saturation pixels by a random dark/mid colour plus noise."""

    def __init__(self, p: float = 0.3, min_value: int = 205, max_spread: int = 30) -> None:
        super().__init__()
        self.p, self.min_value, self.max_spread = p, min_value, max_spread

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) >= self.p:
            return image
        lo, hi = image.amin(dim=0), image.amax(dim=0)
        mask = (lo >= self.min_value) & (hi - lo <= self.max_spread)
        colour = torch.randint(20, 160, (3, 1, 1), dtype=torch.int16)
        noise = torch.randint(-12, 13, image.shape, dtype=torch.int16)
        background = (colour + noise).clamp(0, 255).to(torch.uint8)
        return torch.where(mask, background, image)


def train_transform(size: int) -> v2.Compose:
    """Random view of a cached uint8 image [3, H, W] at ``size`` x ``size``."""
    return v2.Compose(
        [
            BackgroundSwap(p=0.3),
            v2.RandomResizedCrop(size, scale=(0.35, 1.0), ratio=(0.75, 1.333), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.RandomApply([v2.RandomRotation(25)], p=0.4),
            v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03),
            v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.2),
        ]
    )


def normalise(batch: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """uint8 [N, 3, H, W] to the model's normalised float input, as ``to_model_input`` does."""
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((batch.float() / spec.pixel_scale) - mean) / std


def make_batch(
    images: np.ndarray, indices: Sequence[int], spec: InputSpec, size: int | None, augment: bool
) -> torch.Tensor:
    """Normalised float batch of cached HWC uint8 images; augmented at ``size`` when ``augment``."""
    chw = [torch.from_numpy(np.ascontiguousarray(images[i])).permute(2, 0, 1) for i in indices]
    if augment:
        transform = train_transform(size or spec.size)
        chw = [transform(image) for image in chw]
    elif size and size != chw[0].shape[-1]:
        chw = [v2.functional.resize(image, [size, size], antialias=True) for image in chw]
    batch = normalise(torch.stack(chw), spec)
    return batch.contiguous(memory_format=torch.channels_last)
