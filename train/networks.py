"""The report's generator and discriminator, each built from its config dataclass."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .config import DiscriminatorConfig, GeneratorConfig


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)


class ResidualBlock(nn.Module):
    """conv - swish - conv, plus the input. No batch norm: it only costs time at inference
    and, for super-resolution, removing it loses nothing (EDSR)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.conv2 = conv3x3(channels, channels)
        self.act = nn.SiLU()  # modules, not F.silu: quantization-aware training swaps them (qat.py)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


def bicubic_phase_kernels(scale: int = 2, a: float = -0.75) -> torch.Tensor:
    """5x5 kernels that give the scale**2 sub-pixel phases of a x2 bicubic upsampling.

    Followed by PixelShuffle and applied to an edge-padded input, they equal
    ``F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)``. Written as a
    convolution so the skip path exports to Conv + DepthToSpace, which every onnxruntime
    binding, OpenCV's DNN module and int8 quantization handle, unlike a cubic Resize.
    """
    assert scale == 2

    def cubic(t: float) -> float:
        t = abs(t)
        if t <= 1:
            return (a + 2) * t**3 - (a + 3) * t**2 + 1
        if t < 2:
            return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
        return 0.0

    # Output pixel 2i+p sits at input coordinate i - 0.25 (p=0) or i + 0.25 (p=1); the
    # 5 taps are input pixels i-2 .. i+2.
    taps = torch.zeros(2, 5, dtype=torch.float64)
    for phase, centre in enumerate((-0.25, 0.25)):
        for tap in range(5):
            taps[phase, tap] = cubic(tap - 2 - centre)
    kernels = torch.einsum("py,qx->pqyx", taps, taps).reshape(4, 1, 5, 5)
    return kernels.float()


class Generator(nn.Module):
    """conv 1->C + swish, residual blocks, conv C->scale**2, pixel shuffle (x scale).

    The upsampler is a sub-pixel convolution (ESPCN): the last convolution runs at low
    resolution and PixelShuffle rearranges its channels into a x2 image. It is learned
    (unlike a fixed resize after the network), costs a quarter of a convolution at high
    resolution, has none of transposed convolution's checkerboard artefacts, and exports
    to a single DepthToSpace.
    """

    def __init__(self, config: GeneratorConfig = GeneratorConfig()):
        super().__init__()
        self.config = config
        c = config.channels
        self.head = conv3x3(config.in_channels, c)
        self.head_act = nn.SiLU()
        self.body = nn.Sequential(*(ResidualBlock(c) for _ in range(config.residual_blocks)))
        self.body_act = nn.SiLU()
        self.tail = conv3x3(c, config.in_channels * config.scale**2)
        self.shuffle = nn.PixelShuffle(config.scale)
        if config.skip == "bicubic":
            kernels = bicubic_phase_kernels(config.scale).repeat(config.in_channels, 1, 1, 1)
            self.register_buffer("skip_kernels", kernels, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head_act(self.head(x))
        phases = self.tail(self.body_act(self.body(features)))
        if self.config.skip == "bicubic":
            padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
            phases = phases + F.conv2d(padded, self.skip_kernels, groups=self.config.in_channels)
        return self.shuffle(phases)


class Discriminator(nn.Module):
    """8 conv + batch-norm + swish layers (channels widen in pairs, every second layer
    halves the resolution), a conv to one channel, global average pooling.

    ``forward`` returns logits; the report's sigmoid is applied by the training losses, fused
    with BCE for numerical stability, and by the validation's classifier metrics.
    """

    def __init__(self, config: DiscriminatorConfig = DiscriminatorConfig()):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        in_channels = config.in_channels
        for index in range(config.conv_layers):
            out_channels = config.base_channels * 2 ** (index // 2)
            stride = 2 if index % 2 else 1
            layers += [conv3x3(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels), nn.SiLU()]
            in_channels = out_channels
        layers += [conv3x3(in_channels, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(0)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
