"""The pretrained EfficientNet-Lite0 weights map onto timm's model by position."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import timm
import torch

from trainer.model.backbone import (
    FEATURE_DIM,
    WeightMappingError,
    create_backbone,
    map_by_position,
    pretrained_state_dict,
)


def test_backbone_loads_every_pretrained_tensor_in_order() -> None:
    source = pretrained_state_dict()
    assert len(source) == 296
    backbone = create_backbone()
    loaded = backbone.state_dict()
    assert len(loaded) == 294  # no classifier weight and bias
    for (src_key, src), (dst_key, dst) in zip(source.items(), loaded.items(), strict=False):
        assert src.shape == dst.shape, (src_key, dst_key)
        assert torch.equal(src, dst), (src_key, dst_key)
    with torch.inference_mode():
        assert backbone(torch.zeros(1, 3, 224, 224)).shape == (1, FEATURE_DIM)


def test_full_model_with_imagenet_classifier_loads_strictly() -> None:
    model = timm.create_model("efficientnet_lite0", num_classes=1000)
    model.load_state_dict(map_by_position(pretrained_state_dict(), model.state_dict()), strict=True)


def test_mapping_refuses_a_shape_mismatch() -> None:
    source = OrderedDict(a=torch.zeros(3, 4), b=torch.zeros(2))
    with pytest.raises(WeightMappingError, match="does not fit"):
        map_by_position(source, {"x": torch.zeros(3, 4), "y": torch.zeros(5)})
    with pytest.raises(WeightMappingError, match="needs"):
        map_by_position(OrderedDict(a=torch.zeros(1)), {"x": torch.zeros(1), "y": torch.zeros(1)})
