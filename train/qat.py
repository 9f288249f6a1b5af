"""Quantization-aware fine-tuning: onnxruntime's int8 rounding, simulated while training.

onnxruntime's static QDQ quantization (`enhance-edge quantize`) rounds every activation between
the first layer and the image-space output layers to 8 bits, one scale per tensor: the outputs
of the quantized convolutions, of SiLU's Sigmoid and Mul, and of each residual sum. Measured on
the 16-channel, 4-block generator, weights rounded to int8 alone cost nothing (38.758 ->
38.758 dB validation PSNR) and these activations cost 0.41 dB. Fine-tuning with that rounding
in the forward pass (straight-through gradients) teaches the weights to tolerate it. The float
weights are then exported and quantized by `enhance-edge quantize` like any other model's.

The simulation sits where onnxruntime puts QuantizeLinear/DequantizeLinear pairs with the
default recipe (output layers in float): ``prepare`` adds it to a Generator in place, ``strip``
gives back the plain float network.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from .networks import Generator, RepConv

# Weight of each batch in the moving average of the activation ranges.
RANGE_MOMENTUM = 0.01
# Largest int8 weight magnitude per bit count (config.INT8_WEIGHT_BITS), as onnxruntime's symmetric
# per-channel weights have them: 7 bits is its reduce_range (255 * 64 * 2 fits AVX2's 16-bit pair sums).
WEIGHT_LIMITS = {8: 127, 7: 64}


class ActivationFakeQuant(nn.Module):
    """uint8 rounding with one scale and zero point per tensor, as onnxruntime's calibrated
    activations have; the range, which always holds 0, follows a moving average of the training
    batches' min and max and is frozen outside training."""

    def __init__(self):
        super().__init__()
        self.register_buffer("low", torch.tensor(0.0))
        self.register_buffer("high", torch.tensor(0.0))
        self.register_buffer("observed", torch.tensor(False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                low, high = x.min().clamp(max=0), x.max().clamp(min=0)
                if self.observed:
                    self.low.lerp_(low, RANGE_MOMENTUM)
                    self.high.lerp_(high, RANGE_MOMENTUM)
                else:
                    self.low.copy_(low)
                    self.high.copy_(high)
                    self.observed.fill_(True)
        scale = ((self.high - self.low) / 255).clamp(min=1e-8)
        zero_point = torch.round(-self.low / scale).clamp(0, 255).to(torch.int32)
        return torch.fake_quantize_per_tensor_affine(x, scale.float(), zero_point, 0, 255)


class QuantizedSiLU(nn.Module):
    """x * sigmoid(x) with the Sigmoid's and the product's outputs rounded, as the int8 graph does."""

    def __init__(self):
        super().__init__()
        self.sigmoid_out = ActivationFakeQuant()
        self.out = ActivationFakeQuant()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(x * self.sigmoid_out(torch.sigmoid(x)))


def round_weights_per_channel(weight: torch.Tensor, limit: int = WEIGHT_LIMITS[8]) -> torch.Tensor:
    """int8 rounding of a convolution kernel to -limit..limit with one symmetric scale per output
    channel, as onnxruntime's per-channel weights have (straight-through gradients)."""
    scale = (weight.detach().abs().flatten(1).amax(1) / limit).clamp(min=1e-12)
    zero_point = torch.zeros(len(scale), dtype=torch.int32, device=weight.device)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero_point, 0, -limit, limit)


def _round_output(module: nn.Module, fake_quant: ActivationFakeQuant) -> None:
    module.register_forward_hook(lambda _module, _inputs, output: fake_quant(output))


def prepare(generator: Generator, weight_bits: int) -> Generator:
    """Add the int8 simulation to ``generator`` in place (before moving it to a device) and return it;
    a "rep" body's folded kernels are rounded to ``weight_bits`` (WEIGHT_LIMITS).

    The input needs none: an 8-bit image in [0, 1] is exact in uint8. The tail convolution, the
    bicubic skip and the pixel shuffle are the output layers the default recipe keeps in float.
    Both bodies are covered: the report's (SiLU, residual sums) and "rep" (convolution + ReLU).
    """
    generator.rounding = nn.ModuleDict()  # the convolutions' and residual sums' fake quantizers
    if generator.config.body == "rep":
        # onnxruntime fuses each ReLU into its convolution and rounds once, after it. A RepConv's
        # branches are one folded kernel there, whose int8 rounding is simulated too: the identity
        # branch puts ~1 at its centre taps beside small ones, so a folded kernel loses more to
        # per-channel rounding than the report's convolutions did (on `fast`: 57.5 dB against
        # fp32 on LFW faces with 16-bit activations, the weights' rounding alone).
        round_weights = functools.partial(round_weights_per_channel, limit=WEIGHT_LIMITS[weight_bits])
        generator.rounding["head"] = ActivationFakeQuant()
        _round_output(generator.head_act, generator.rounding["head"])
        generator.head.weight_rounding = round_weights
        for index, layer in enumerate(generator.body):
            generator.rounding[f"body{index}"] = ActivationFakeQuant()
            _round_output(layer, generator.rounding[f"body{index}"])
            layer[0].weight_rounding = round_weights
        return generator
    generator.rounding["head"] = ActivationFakeQuant()
    _round_output(generator.head, generator.rounding["head"])
    generator.head_act, generator.body_act = QuantizedSiLU(), QuantizedSiLU()
    for index, block in enumerate(generator.body):
        for name in ("conv1", "conv2", "sum"):
            generator.rounding[f"block{index}_{name}"] = ActivationFakeQuant()
        _round_output(block.conv1, generator.rounding[f"block{index}_conv1"])
        _round_output(block.conv2, generator.rounding[f"block{index}_conv2"])
        _round_output(block, generator.rounding[f"block{index}_sum"])
        block.act = QuantizedSiLU()
    return generator


def strip(generator: Generator) -> Generator:
    """The float network with ``generator``'s weights, on its device and in its memory format; each
    folded kernel that training rounded (a "rep" body's) is put on that int8 grid, so that the float
    network is the one training scored and its int8 file holds the same weights (`quantize` finds the
    grid again: the largest weight of each channel stays its limit)."""
    plain = Generator(generator.config)
    weights = plain.state_dict()
    plain.load_state_dict({key: value for key, value in generator.state_dict().items() if key in weights})
    rounding = {name: module.weight_rounding for name, module in generator.named_modules()
                if isinstance(module, RepConv) and module.weight_rounding is not None}
    with torch.no_grad():
        for name, module in plain.named_modules():
            if name in rounding:
                kernel, _ = module.folded()
                module.conv3.weight += rounding[name](kernel) - kernel
    return plain.to(next(generator.parameters()).device, memory_format=torch.channels_last).train(generator.training)
