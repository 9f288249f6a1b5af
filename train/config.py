"""One dataclass per network and one for the training run.

Defaults are the report's numbers ("Enhance! A GAN for Image Upscaling"). The same values
are saved inside every checkpoint and, for the generator, in the exported ONNX metadata.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, get_args

from enhance_edge.eval.degradation import DegradationConfig

SkipPath = Literal["none", "bicubic"]
# "degradation": the generator takes a second input, the degradation level in [0, 1]
# (enhance_edge.eval.degradation), and a small estimator network learns to read it from the LR.
Condition = Literal["none", "degradation"]
# "residual": the report's body, residual blocks of two convolutions with swish between. "rep": a
# plain chain of 3x3 convolutions with ReLU, each trained with parallel 1x1 and identity branches
# that fold into the one 3x3 kernel at export (RepVGG, ECBSR): no adds or swish at inference, and
# ReLU fuses into onnxruntime's convolution kernels.
BodyKind = Literal["residual", "rep"]
ContentLoss = Literal["mse", "l1", "psnr"]  # "mse": the report's; "psnr": minus the mean per-image PSNR
LrSchedule = Literal["constant", "cosine"]  # "constant": the report's


# Upper bounds of a network's size, far above any design trained here (20 channels, 16 blocks, x4) and
# checked before any module is built: a checkpoint or model file declaring 10^6 blocks would otherwise
# spend minutes and gigabytes building them before its weights are found not to fit.
MAX_CHANNELS = 1024  # any layer's width
MAX_IN_CHANNELS = 4  # gray or luma, RGB, RGBA
MAX_RESIDUAL_BLOCKS = 256  # EDSR has 32, RCAN 200
MAX_REP_CONVS = 2 * MAX_RESIDUAL_BLOCKS  # as many 3x3 convolutions as the residual body's limit
MAX_SCALE = 16
MAX_DISCRIMINATOR_LAYERS = 16


def _check_count(config: Any, name: str, low: int, high: int) -> None:
    """ValueError, showing the value, unless ``config.name`` is a whole number from ``low`` to ``high``."""
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{type(config).__name__}.{name} must be a whole number from {low} to {high}, got {value!r}")


def _validated(cls, values: dict[str, Any]):
    """Build a config from a dict (a checkpoint, ONNX metadata), naming unknown keys."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; known: {sorted(known)}")
    return cls(**values)


@dataclass(frozen=True)
class GeneratorConfig:
    in_channels: int = 1  # luma or gray
    channels: int = 20
    residual_blocks: int = 16
    scale: int = 2
    # "none": the report's network. "bicubic": add a fixed bicubic upsampling of the input,
    # so the network only learns the residual detail (the reference recipe of docs/evaluation.md).
    skip: SkipPath = "none"
    condition: Condition = "none"
    body: BodyKind = "residual"
    rep_convs: int = 0  # the "rep" body's 3x3 convolutions between head and tail

    def __post_init__(self):
        for name, low, high in (("in_channels", 1, MAX_IN_CHANNELS), ("channels", 1, MAX_CHANNELS),
                                ("scale", 1, MAX_SCALE), ("residual_blocks", 0, MAX_RESIDUAL_BLOCKS),
                                ("rep_convs", 0, MAX_REP_CONVS)):
            _check_count(self, name, low, high)
        if self.skip not in get_args(SkipPath):
            raise ValueError(f"GeneratorConfig.skip must be one of {get_args(SkipPath)}, got {self.skip!r}")
        if self.condition not in get_args(Condition):
            raise ValueError(f"GeneratorConfig.condition must be one of {get_args(Condition)}, got {self.condition!r}")
        if self.body not in get_args(BodyKind):
            raise ValueError(f"GeneratorConfig.body must be one of {get_args(BodyKind)}, got {self.body!r}")
        if self.body == "rep" and (self.rep_convs < 1 or self.residual_blocks):
            raise ValueError(f"GeneratorConfig.body 'rep' needs rep_convs >= 1 and residual_blocks 0, got "
                             f"{self.rep_convs} and {self.residual_blocks}")
        if self.body == "residual" and self.rep_convs:
            raise ValueError(f"GeneratorConfig.rep_convs is for the 'rep' body, got {self.rep_convs} with 'residual'")

    @property
    def head_in_channels(self) -> int:
        """The "rep" body hears the degradation level as one more input channel, a constant plane
        (FFDNet's noise-level map): it folds into the head convolution, where per-layer level biases
        would each add a pass over the feature maps and break onnxruntime's Conv+ReLU fusion."""
        return self.in_channels + (self.body == "rep" and self.condition == "degradation")

    def body_convolutions(self) -> int:
        """3x3 convolutions between head and tail."""
        return self.rep_convs if self.body == "rep" else 2 * self.residual_blocks

    def macs_per_input_pixel(self) -> int:
        """Multiply-adds per low-resolution input pixel (3x3 convolutions dominate)."""
        c, k = self.channels, 9
        head = k * self.head_in_channels * c
        body = self.body_convolutions() * k * c * c
        tail = k * c * self.in_channels * self.scale**2
        skip = bicubic_taps(self.scale) ** 2 * self.scale**2 if self.skip == "bicubic" else 0
        return head + body + tail + skip

    to_dict = asdict
    from_dict = classmethod(_validated)


def bicubic_taps(scale: int) -> int:
    """Input pixels per axis that one output phase of a x``scale`` bicubic upsampling reads
    (5 for x2 and x4): the skip path's kernel size."""
    reach = 2 + (scale - 1) / (2 * scale)  # the cubic's support of 2, plus the farthest phase offset
    return 2 * int(reach) + 1


@dataclass(frozen=True)
class EstimatorConfig:
    """The degradation-level estimator of a conditioned generator: strided convolutions and a
    global mean, so it reads noise and 8x8 JPEG blocking over a receptive field of ~20 pixels."""

    channels: int = 16
    # 2 reads the residual at half resolution from the first layer on: a quarter of the cost, which
    # matters once the estimator runs inside every model call (the single-file model).
    first_stride: int = 1

    def __post_init__(self):
        _check_count(self, "channels", 1, MAX_CHANNELS // 2)  # its inner layers are twice as wide
        if self.first_stride not in (1, 2):
            raise ValueError(f"EstimatorConfig.first_stride must be 1 or 2, got {self.first_stride}")

    to_dict = asdict
    from_dict = classmethod(_validated)


@dataclass(frozen=True)
class DiscriminatorConfig:
    in_channels: int = 1
    # 8 conv + batch-norm + swish layers; channels widen in pairs: c, c, 2c, 2c, 4c, 4c, 8c, 8c.
    base_channels: int = 16
    conv_layers: int = 8

    def __post_init__(self):
        _check_count(self, "in_channels", 1, MAX_IN_CHANNELS)
        _check_count(self, "conv_layers", 2, MAX_DISCRIMINATOR_LAYERS)
        if self.conv_layers % 2:
            raise ValueError(f"DiscriminatorConfig.conv_layers must be even, got {self.conv_layers}")
        _check_count(self, "base_channels", 1, MAX_CHANNELS)
        if self.widest_channels > MAX_CHANNELS:
            raise ValueError(f"DiscriminatorConfig's last layers would be {self.widest_channels} channels wide "
                             f"(base_channels {self.base_channels} x 2^{self.conv_layers // 2 - 1}); at most "
                             f"{MAX_CHANNELS}")

    @property
    def widest_channels(self) -> int:
        """The width of the last pair of layers."""
        return self.base_channels * 2 ** (self.conv_layers // 2 - 1)

    to_dict = asdict
    from_dict = classmethod(_validated)


# The bits an int8 file's weights may have (`train --qat-weight-bits`, `quantize --weight-bits`).
INT8_WEIGHT_BITS = (8, 7)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 50
    batch_size: int = 64
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.9)
    # G loss = content + adversarial_weight * BCE(1, D(G(lr))); 0 trains on content alone.
    adversarial_weight: float = 1e-3
    content_loss: ContentLoss = "mse"
    # Epochs of content-only training before the adversarial phase (SRGAN's warm start).
    warmup_epochs: int = 0
    # Or start the generator from another run's checkpoint (e.g. an MSE-only one).
    init_from: str | None = None
    # Knowledge distillation: a trained enhance-edge ONNX model (bundled name or path) whose
    # outputs are a second target, content(G(lr), teacher(lr)) * distill_weight added to the loss.
    teacher: str | None = None
    distill_weight: float = 1.0
    # Quantization-aware training: simulate the int8 model's activation rounding (qat.py), best
    # after --init-from a float run; best.pt is then the best simulated-int8 validation PSNR.
    qat: bool = False
    # The int8 weights qat rounds to: 8 bits (-127..127), or 7 (-64..64, onnxruntime's reduce_range),
    # whose pairs of uint8 x int8 products fit the 16-bit sums of x86 CPUs without VNNI (AVX2), so
    # that such a CPU's int8 kernels compute the file exactly (qat.WEIGHT_LIMITS).
    qat_weight_bits: int = 8
    # Hold the generator still and train only its level estimator (a conditioned --init-from run):
    # each step skips the generator's forward and backward passes, so a new estimator for a
    # trained model takes a fraction of a full run's time.
    estimator_only: bool = False
    # With estimator_only: learn what the --init-from estimator reads from each LR drawn with its
    # JPEG blocks on the image's own grid, not the true level, so that the new estimator finds blocks
    # wherever they fall (jpeg_grid_shift) and reads everything else as the model was calibrated on.
    keep_readings: bool = False
    lr_schedule: LrSchedule = "constant"
    hflip: bool = False  # random horizontal flips of training pairs
    hr_size: tuple[int, int] | None = (92, 112)  # (width, height); None: crop to even size
    max_images: int | None = None  # cap per split, for quick runs and tests
    # More training images beside the face folder's train split: folders of any images (colour
    # photos are read as luma), from which each epoch draws ``extra_crops`` random HR-sized crops.
    # Validation and test stay the face folder's.
    extra_data: tuple[str, ...] = ()
    extra_crops: int = 1024
    seed: int = 0
    threads: int | None = None  # torch intra-op threads; None: torch's default
    # Also write OUT/last.pt every this many optimiser steps (0: only at epoch ends).
    checkpoint_every: int = 500

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        for name, kind in (("content_loss", ContentLoss), ("lr_schedule", LrSchedule)):
            if getattr(self, name) not in get_args(kind):
                raise ValueError(f"{name} must be one of {get_args(kind)}, got {getattr(self, name)!r}")
        if self.adversarial_weight < 0:
            raise ValueError(f"adversarial_weight must be >= 0, got {self.adversarial_weight}")
        if self.distill_weight < 0:
            raise ValueError(f"distill_weight must be >= 0, got {self.distill_weight}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if self.qat_weight_bits not in INT8_WEIGHT_BITS:
            raise ValueError(f"qat_weight_bits must be one of {list(INT8_WEIGHT_BITS)}, got {self.qat_weight_bits}")
        if self.extra_crops < 0:
            raise ValueError(f"extra_crops must be >= 0, got {self.extra_crops}")
        object.__setattr__(self, "extra_data", tuple(self.extra_data))
        for name in ("max_images", "threads"):  # None: no cap, torch's default
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (or None), got {getattr(self, name)}")
        # Checkpoints store tuples as lists; keep the dataclass hashable and comparable.
        object.__setattr__(self, "betas", tuple(self.betas))
        if self.hr_size is not None:
            object.__setattr__(self, "hr_size", tuple(self.hr_size))

    @property
    def adversarial(self) -> bool:
        return self.adversarial_weight > 0

    to_dict = asdict
    from_dict = classmethod(_validated)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run; saved whole in each checkpoint."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # None: training LRs are docs/evaluation.md's clean bicubic halves (the report's setting).
    degradation: DegradationConfig | None = None
    estimator: EstimatorConfig = field(default_factory=EstimatorConfig)

    def __post_init__(self):
        if self.generator.condition == "degradation" and self.degradation is None:
            raise ValueError("a generator conditioned on the degradation level needs degraded training pairs "
                             "(a degradation config)")
        if self.train.estimator_only and (self.generator.condition != "degradation" or not self.train.init_from
                                          or self.train.teacher or self.train.adversarial):
            raise ValueError("estimator_only trains the level estimator of a trained conditioned generator: it needs "
                             "condition 'degradation' and init_from, and takes no teacher or adversarial weight")
        if self.train.keep_readings and not (self.train.estimator_only and self.degradation is not None
                                             and self.degradation.jpeg_grid_shift):
            raise ValueError("keep_readings teaches an estimator to read blocks off the JPEG grid: it needs "
                             "estimator_only and degradations with jpeg_grid_shift")

    def to_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.to_dict(), "discriminator": self.discriminator.to_dict(),
                "train": self.train.to_dict(),
                "degradation": self.degradation.to_dict() if self.degradation else None,
                "estimator": self.estimator.to_dict()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        # Checkpoints written before degradations existed have neither of the last two keys.
        degradation = values.get("degradation")
        return cls(GeneratorConfig.from_dict(values["generator"]),
                   DiscriminatorConfig.from_dict(values["discriminator"]),
                   TrainConfig.from_dict(values["train"]),
                   DegradationConfig.from_dict(degradation) if degradation else None,
                   EstimatorConfig.from_dict(values.get("estimator", {})))
