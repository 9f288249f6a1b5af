"""The report's generator and discriminator, each built from its config dataclass."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .config import DiscriminatorConfig, EstimatorConfig, GeneratorConfig, bicubic_taps


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)


class LevelBias(nn.Module):
    """A learned per-channel bias times the degradation level: how a conditioned generator hears
    its strength input (FFDNet gives its network a noise-level map; a bias per layer is the same
    signal for a level that is constant over the image). Zero at first, so a generator warm-started
    from an unconditioned one computes exactly what it did."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        return x + level * self.weight


class ResidualBlock(nn.Module):
    """conv - swish - conv, plus the input. No batch norm: it only costs time at inference
    and, for super-resolution, removing it loses nothing (EDSR). Conditioned, the first
    convolution's output also gets the level's bias."""

    def __init__(self, channels: int, conditioned: bool = False):
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.conv2 = conv3x3(channels, channels)
        self.act = nn.SiLU()  # modules, not F.silu: quantization-aware training swaps them (qat.py)
        self.level_bias = LevelBias(channels) if conditioned else None

    def forward(self, x: torch.Tensor, level: torch.Tensor | None = None) -> torch.Tensor:
        inner = self.conv1(x)
        if self.level_bias is not None:
            inner = self.level_bias(inner, level)
        return x + self.conv2(self.act(inner))


class RepConv(nn.Module):
    """A 3x3 convolution trained as three parallel branches: 3x3, 1x1 and (same width) identity.
    The extra paths ease the training of a deep plain chain (RepVGG; ECBSR for super-resolution);
    being linear, they sum into one 3x3 kernel and bias: ``fold`` returns that convolution, whose
    outputs equal the branches' sum."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv3 = conv3x3(in_channels, out_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1)
        self.identity = in_channels == out_channels
        # Set by quantization-aware training (qat.py): rounds the folded kernel as int8 export will.
        self.weight_rounding: Callable[[torch.Tensor], torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight_rounding is not None:
            weight, bias = self.folded()
            return F.conv2d(x, self.weight_rounding(weight), bias, padding=1)
        out = self.conv3(x) + self.conv1(x)
        return out + x if self.identity else out

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The one 3x3 kernel and bias the branches sum to (differentiable)."""
        weight = self.conv3.weight + F.pad(self.conv1.weight, (1, 1, 1, 1))
        if self.identity:
            eye = torch.eye(self.conv3.out_channels, device=weight.device, dtype=weight.dtype)
            weight = weight + F.pad(eye[:, :, None, None], (1, 1, 1, 1))
        return weight, self.conv3.bias + self.conv1.bias

    @torch.no_grad()
    def fold(self) -> nn.Conv2d:
        conv = conv3x3(self.conv3.in_channels, self.conv3.out_channels).to(self.conv3.weight.device)
        weight, bias = self.folded()
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
        return conv


def bicubic_phase_kernels(scale: int = 2, a: float = -0.75) -> torch.Tensor:
    """Kernels that give the scale**2 sub-pixel phases of a x``scale`` bicubic upsampling.

    Followed by PixelShuffle and applied to an edge-padded input, they equal
    ``F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)``. Written as a
    convolution so the skip path exports to Conv + DepthToSpace, which every onnxruntime
    binding, OpenCV's DNN module and int8 quantization handle, unlike a cubic Resize.
    """

    def cubic(t: float) -> float:
        t = abs(t)
        if t <= 1:
            return (a + 2) * t**3 - (a + 3) * t**2 + 1
        if t < 2:
            return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
        return 0.0

    # Output pixel scale*i+p sits at input coordinate i + (2p + 1 - scale) / (2 scale) (x2:
    # i - 0.25 and i + 0.25); the taps are input pixels i-r .. i+r.
    size = bicubic_taps(scale)
    reach = size // 2
    taps = torch.zeros(scale, size, dtype=torch.float64)
    for phase in range(scale):
        centre = (2 * phase + 1 - scale) / (2 * scale)
        for tap in range(size):
            taps[phase, tap] = cubic(tap - reach - centre)
    kernels = torch.einsum("py,qx->pqyx", taps, taps).reshape(scale * scale, 1, size, size)
    return kernels.float()


class Generator(nn.Module):
    """conv 1->C + swish, residual blocks, conv C->scale**2, pixel shuffle (x scale); or, with
    the "rep" body, conv + ReLU, ``rep_convs`` x (conv + ReLU), conv, pixel shuffle, every conv a
    ``RepConv`` until ``fold``.

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
        self.conditioned = config.condition == "degradation"
        out_channels = config.in_channels * config.scale**2
        self.body: nn.ModuleList
        if config.body == "rep":
            self.head: nn.Module = RepConv(config.head_in_channels, c)
            self.head_level_bias = None  # the level is an input channel (GeneratorConfig.head_in_channels)
            self.head_act: nn.Module = nn.ReLU()
            self.body = nn.ModuleList(nn.Sequential(RepConv(c, c), nn.ReLU()) for _ in range(config.rep_convs))
            self.body_act: nn.Module = nn.Identity()
            self.tail: nn.Module = RepConv(c, out_channels)
            # Zero at first: with the bicubic skip the untrained network is bicubic upsampling (a
            # random tail started 7 dB below it), and the body learns only the missing detail.
            for parameter in self.tail.parameters():
                nn.init.zeros_(parameter)
        else:
            self.head = conv3x3(config.in_channels, c)
            self.head_level_bias = LevelBias(c) if self.conditioned else None
            self.head_act = nn.SiLU()
            # A ModuleList, not a Sequential: conditioned blocks take the level too. (The weight
            # names, body.N.conv1..., are the same either way.)
            self.body = nn.ModuleList(ResidualBlock(c, self.conditioned) for _ in range(config.residual_blocks))
            self.body_act = nn.SiLU()
            self.tail = conv3x3(c, out_channels)
        self.shuffle = nn.PixelShuffle(config.scale)
        if config.skip == "bicubic":
            kernels = bicubic_phase_kernels(config.scale).repeat(config.in_channels, 1, 1, 1)
            self.register_buffer("skip_kernels", kernels, persistent=False)

    def forward(self, x: torch.Tensor, level: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: (N, C, H, W) in [0, 1]; ``level``: (N, 1, 1, 1) degradation levels in [0, 1],
        required by a conditioned generator and refused by another."""
        if (level is None) == self.conditioned:
            raise ValueError(f"generator with condition={self.config.condition!r} called "
                             f"{'without' if level is None else 'with'} a level")
        if self.config.body == "rep":
            head_input = x if level is None else torch.cat([x, level.expand(-1, 1, *x.shape[2:])], dim=1)
            features = self.head_act(self.head(head_input))
            for layer in self.body:
                features = layer(features)
        else:
            features = self.head(x)
            if self.head_level_bias is not None:
                features = self.head_level_bias(features, level)
            features = self.head_act(features)
            for block in self.body:
                features = block(features, level)
        phases = self.tail(self.body_act(features))
        if self.config.skip == "bicubic":
            reach = self.skip_kernels.shape[-1] // 2
            padded = F.pad(x, (reach, reach, reach, reach), mode="replicate")
            phases = phases + F.conv2d(padded, self.skip_kernels, groups=self.config.in_channels)
        return self.shuffle(phases)

    def fold(self) -> None:
        """Replace every ``RepConv`` by the one 3x3 convolution its branches sum to (in place; the
        outputs stay the same up to float rounding). What export runs before tracing."""
        for parent in (self, *self.body):
            for name, child in list(parent.named_children()):
                if isinstance(child, RepConv):
                    setattr(parent, name, child.fold())


class DegradationEstimator(nn.Module):
    """The degradation level of an LR, as ``enhance_edge.eval.degradation.level_of`` measures it,
    read from the pixels alone: (N, 1, H, W) -> (N, 1, 1, 1) in [0, 1].

    It looks at the image's high-pass residual (the image minus its 3x3 mean), amplified: noise and
    JPEG's blocking and ringing are a few 8-bit levels, which beside the content's own range a
    network fed raw pixels did not learn to see (its level error stayed at a constant guess's over
    260 steps, where this one reached 0.06 in 800). Local estimates at a quarter of the resolution
    are averaged over the image, so any size works and the runtime can average several crops of a
    large one. Outside training a clamp keeps the level in the range the generator was trained on;
    in training it would stop the gradient of every estimate that strays below 0.
    """

    HIGH_PASS_GAIN = 16.0

    def __init__(self, config: EstimatorConfig = EstimatorConfig(), in_channels: int = 1):
        super().__init__()
        self.config = config
        c = config.channels
        self.local_mean = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.layers = nn.Sequential(
            conv3x3(in_channels, c, stride=config.first_stride), nn.SiLU(),
            conv3x3(c, 2 * c, stride=2), nn.SiLU(),
            conv3x3(2 * c, 2 * c), nn.SiLU(),
            conv3x3(2 * c, 2 * c, stride=2), nn.SiLU(),
            nn.Conv2d(2 * c, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = (x - self.local_mean(x)) * self.HIGH_PASS_GAIN
        level = self.layers(residual).mean(dim=(2, 3), keepdim=True)
        return level if self.training else level.clamp(0.0, 1.0)


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
