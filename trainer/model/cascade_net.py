"""The served network: one shared backbone feeding the organic head and the material head.

Its single input is ``image`` [N, 3, size, size] (already normalised); its outputs are ``p_organic``
[N] (sigmoid) and ``material_probs`` [N, 6] (softmax, ``MATERIALS`` order). The exported ONNX graph
is this module as it stands; the worker serves it unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


class CascadeNet(nn.Module):
    """Backbone + organic head + material head, with probabilities as outputs.

    With ``mirror_average`` the graph also runs the horizontally mirrored image (one batch of 2N
    through the backbone) and averages both views' probabilities: twice the compute, but far fewer
    confidently wrong items, so more of them clear the abstain threshold at the same purity. The
    inputs and outputs stay the same, so the worker serves it unchanged.
    """

    def __init__(
        self,
        backbone: nn.Module,
        organic_head: nn.Module,
        material_head: nn.Module,
        *,
        mirror_average: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.organic_head = organic_head
        self.material_head = material_head
        self.mirror_average = mirror_average

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        views = torch.cat([image, torch.flip(image, dims=[3])]) if self.mirror_average else image
        features = self.backbone(views)
        p_organic = torch.sigmoid(self.organic_head(features)).reshape(-1)
        material_probs = torch.softmax(self.material_head(features), dim=1)
        if self.mirror_average:
            p_organic = p_organic.reshape(2, -1).mean(dim=0)
            material_probs = material_probs.reshape(2, -1, material_probs.shape[-1]).mean(dim=0)
        return p_organic, material_probs
