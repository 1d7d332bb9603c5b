"""Quantization-aware fine-tuning: teach finished weights to survive ONNX Runtime's int8.

Why: static quantization of the EMA model loses 0.6 point whatever the calibration recipe
(docs/model-report/NOTES.md): the damage is 8-bit activations themselves, mostly at the
linear-bottleneck projections. So a few hundred training steps are run with that rounding
simulated, and the weights learn to live with it.

The simulation follows what ``trainer.release.int8.quantize_int8`` later does to the exported graph:

- batch norms folded into their convolutions (the exported graph has none), then frozen;
- weights rounded per output channel, symmetric int8 (scale = max |w| / 127);
- activations rounded per tensor to uint8 over a moving min/max range, at the tensors ONNX
  Runtime quantizes: the input, every norm-activation output, every residual sum, the pooled
  features and the heads' layers.

Rounding has no gradient; the straight-through estimator of PyTorch's fake-quantize ops passes it
through. At the end the hooks are removed and the weights left on their int8 grid, so the exported
float model is what int8 will round to; ``quantize_int8`` then calibrates its own ranges as usual.
"""

from __future__ import annotations

import itertools
import logging
import math

import torch
from torch import nn
from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver
from torch.nn.utils import parametrize
from tqdm import tqdm

from sortline.manifest import InputSpec
from trainer.data.augment import make_batch
from trainer.fit.config import QatConfig
from trainer.fit.finetune import CascadeLoss, LogitsNet, TrainData, targets
from trainer.model.cascade_net import CascadeNet

log = logging.getLogger(__name__)


def fold_batchnorms(module: nn.Module) -> int:
    """Fold every BatchNorm that directly follows a Conv2d among siblings; returns how many.

    The norm stays in place as an identity (weight 1, bias 0, mean 0, var 1 - eps) and is frozen,
    so timm's norm-plus-activation modules keep their activation.
    """
    folded = 0
    children = list(module.children())
    for conv, norm in itertools.pairwise(children):
        if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
            _fold(conv, norm)
            folded += 1
    return folded + sum(fold_batchnorms(child) for child in children)


@torch.no_grad()
def _fold(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    assert norm.running_mean is not None and norm.running_var is not None
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
    conv.bias = nn.Parameter(norm.bias + (bias - norm.running_mean) * scale)
    norm.weight.fill_(1.0)
    norm.bias.zero_()
    norm.running_mean.zero_()
    norm.running_var.fill_(1.0 - norm.eps)
    norm.requires_grad_(False)


class PerChannelInt8(nn.Module):
    """Rounds a weight to symmetric int8 per output channel (straight-through gradient)."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(1, weight.ndim))
        scale = (weight.detach().abs().amax(dim=dims).clamp(min=1e-12) / 127).float()
        zero = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -127, 127)


def activation_fake_quant() -> FakeQuantize:
    """uint8 per-tensor rounding over a moving min/max range (ONNX Runtime's MinMax, asymmetric)."""
    return FakeQuantize(
        observer=MovingAverageMinMaxObserver,
        quant_min=0,
        quant_max=255,
        dtype=torch.quint8,
        qscheme=torch.per_tensor_affine,
    )


def _rounded_outputs(net: CascadeNet) -> list[nn.Module]:
    """The modules whose outputs ONNX Runtime stores as uint8 tensors."""
    chosen: list[nn.Module] = []
    for module in net.modules():
        residual_sum = getattr(module, "has_skip", False)  # timm blocks that add their input
        if residual_sum or isinstance(module, nn.BatchNorm2d | nn.Linear | nn.ReLU | nn.AdaptiveAvgPool2d):
            chosen.append(module)
    return chosen


class QuantSim:
    """Fake quantization attached to a ``CascadeNet`` (weights and activations); ``remove`` undoes it."""

    def __init__(self, net: CascadeNet) -> None:
        self.net = net
        self.folded = fold_batchnorms(net.backbone)
        self.norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
        self.weighted = [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
        for module in self.weighted:
            parametrize.register_parametrization(module, "weight", PerChannelInt8())
        self.quantizers = nn.ModuleList()
        self.hooks = [net.backbone.register_forward_pre_hook(self._input_hook())]
        for module in _rounded_outputs(net):
            self.hooks.append(module.register_forward_hook(self._output_hook()))

    def _input_hook(self):
        quantizer = self._new_quantizer()
        return lambda _module, args: (quantizer(args[0]), *args[1:])

    def _output_hook(self):
        quantizer = self._new_quantizer()
        return lambda _module, _args, output: quantizer(output)

    def _new_quantizer(self) -> FakeQuantize:
        quantizer = activation_fake_quant()
        self.quantizers.append(quantizer)
        return quantizer

    def set_rounding(self, on: bool) -> None:
        for quantizer in self.quantizers:
            quantizer.enable_fake_quant(on)

    def train(self, heads: bool) -> None:
        """Training mode, but folded norms keep their (identity) statistics; frozen heads stay in eval."""
        self.net.train()
        for norm in self.norms:
            norm.eval()
        if not heads:
            self.net.organic_head.eval()
            self.net.material_head.eval()

    def remove(self) -> CascadeNet:
        """Drop the hooks and keep each weight as rounded (on the int8 grid)."""
        for hook in self.hooks:
            hook.remove()
        for module in self.weighted:
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        return self.net.eval()


def quantization_aware_finetune(
    net: CascadeNet, data: TrainData, spec: InputSpec, cfg: QatConfig
) -> CascadeNet:
    """Fine-tune ``net`` (in place) for ``cfg.steps`` with int8 rounding simulated; returns it."""
    sim = QuantSim(net)
    if not cfg.train_heads:
        net.organic_head.requires_grad_(False)
        net.material_head.requires_grad_(False)
    log.info("QAT: %d norms folded, %d weights rounded, %d activations rounded",
             sim.folded, len(sim.weighted), len(sim.quantizers))  # fmt: skip
    organic, material = targets(data.labels)
    loss_fn = CascadeLoss(organic, material, cfg.label_smoothing)
    organic_t, material_t = torch.from_numpy(organic), torch.from_numpy(material)
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / max(1, cfg.steps)))
    )
    model, generator = LogitsNet(net), torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # the augmentations' draws: the same whatever ran before
    sim.train(heads=cfg.train_heads)
    sim.set_rounding(False)
    bar = tqdm(range(cfg.steps), desc=f"quantization-aware @{spec.size}px", unit="step")
    for step in bar:
        if step == cfg.observe_steps:
            sim.set_rounding(True)
        idx = torch.randint(len(data.labels), (cfg.batch_size,), generator=generator).tolist()
        x = make_batch(data.images, idx, spec, spec.size, augment=True)
        loss = loss_fn(model(x), organic_t[idx], material_t[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}", rounding=step >= cfg.observe_steps)
    net.organic_head.requires_grad_(True)
    net.material_head.requires_grad_(True)
    return sim.remove()
