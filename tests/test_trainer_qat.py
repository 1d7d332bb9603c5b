"""Quantization-aware fine-tuning on a tiny cascade: folding is exact, rounding is int8, steps learn."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from sortline.labels import MATERIALS
from tests.finetune_support import SPEC, tiny_backbone, tiny_data
from trainer.fit.config import QatConfig
from trainer.fit.finetune import predict_cached
from trainer.fit.heads import make_head
from trainer.fit.quantization_aware import QuantSim, fold_batchnorms, quantization_aware_finetune
from trainer.model.cascade_net import CascadeNet


def tiny_net() -> CascadeNet:
    torch.manual_seed(0)
    net = CascadeNet(tiny_backbone(), make_head(1, 0.0), make_head(6, 0.0))
    norm = net.backbone[1]
    norm.running_mean.uniform_(-1, 1)  # statistics a trained norm would have
    norm.running_var.uniform_(0.5, 2)
    nn.init.uniform_(norm.weight, 0.5, 1.5)
    nn.init.uniform_(norm.bias, -0.5, 0.5)
    return net.eval()


def test_folding_batchnorm_keeps_the_function() -> None:
    net = tiny_net()
    image = torch.randn(4, 3, SPEC.size, SPEC.size)
    before = net(image)
    folded = copy.deepcopy(net)
    assert fold_batchnorms(folded.backbone) == 1
    after = folded(image)
    assert torch.allclose(before[1], after[1], atol=1e-5) and torch.allclose(before[0], after[0], atol=1e-5)
    assert not folded.backbone[1].weight.requires_grad


def test_simulation_rounds_weights_per_channel_and_removal_leaves_them_on_the_grid() -> None:
    net = tiny_net()
    sim = QuantSim(net)
    assert len(sim.quantizers) >= 5  # input, norm, relu, pool, linear layers
    conv = net.backbone[0]
    rounded = conv.weight.detach()
    steps = rounded / (rounded.abs().amax(dim=(1, 2, 3), keepdim=True) / 127)
    assert torch.allclose(steps, steps.round(), atol=1e-3)
    sim.set_rounding(True)
    image = torch.randn(2, 3, SPEC.size, SPEC.size)
    net(image)  # observers see a batch
    quantized = net(image)[1]
    sim.remove()
    assert not hasattr(conv, "parametrizations")
    assert torch.allclose(conv.weight, rounded)  # left as rounded
    plain = net(image)[1]
    assert not torch.equal(quantized, plain)  # the hooks did round activations, and are gone


def test_quantization_aware_steps_teach_a_rounded_model() -> None:
    net = tiny_net()
    data = tiny_data(per_label=6)
    reference = copy.deepcopy(net)
    cfg = QatConfig(steps=40, batch_size=16, lr=1e-2, observe_steps=5, train_heads=True)
    tuned = quantization_aware_finetune(net, data, SPEC, cfg)
    assert tuned is net and not net.training
    changed = [not torch.equal(a, b) for a, b in zip(reference.parameters(), net.parameters(), strict=True)]
    assert any(changed)
    _, probs = predict_cached(net, data.images, SPEC)
    labels = np.array(data.labels)
    rows = labels != "organic"
    names = np.array(MATERIALS)
    assert (names[probs[rows].argmax(1)] == labels[rows]).mean() > 1 / 6 + 0.2


def test_by_default_the_heads_are_only_rounded_and_the_backbone_learns() -> None:
    net = tiny_net()
    head = net.material_head[-1].weight.detach().clone()
    stem = net.backbone[0].weight.detach().clone()
    quantization_aware_finetune(net, tiny_data(per_label=2), SPEC, QatConfig(steps=3, batch_size=8, lr=1e-3))
    grid = head.abs().amax(dim=1, keepdim=True) / 127
    assert torch.allclose(net.material_head[-1].weight, (head / grid).round() * grid, atol=1e-6)
    assert not torch.allclose(net.backbone[0].weight, stem, atol=1e-4)  # folded and trained
    assert all(p.requires_grad for p in net.material_head.parameters())
