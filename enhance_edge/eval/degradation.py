"""Degraded low-resolution inputs: docs/evaluation.md's named conditions and the random training pipeline.

Real low-resolution images were blurred by a lens or a resampler, carry sensor noise and were
JPEG-compressed. A model trained only on clean bicubic halves sharpens JPEG blocks and noise
into visible patterns. Training therefore draws each LR through :func:`degrade`, a seeded
pipeline in the spirit of Real-ESRGAN's and BSRGAN's degradation models, cut down to what a x2
face model meets: optional blur before the down-scale (isotropic or anisotropic Gaussian), a
random down-scaling kernel, then Gaussian or Poisson noise and JPEG in a random order, with a
share of clean pairs. Blur and the kernel vary only in pairs that are also noisy or compressed:
a pair at level 0 is always docs/evaluation.md's clean bicubic half, so a conditioned model at strength
0 keeps the sharpness of one trained on clean pairs. (With blur and kernels at level 0 too, the
`fast` model's clean validation PSNR at strength 0 fell from 38.76 to 37.70 dB in 6 epochs.)

Each degraded LR carries its *level*: how far noise and compression moved its pixels from the
clean down-scale, as RMS in 8-bit levels over :data:`LEVEL_UNIT`, clipped to [0, 1]. A
conditioned model takes this level as its strength input (0: a clean image, sharpen; 1: heavy
noise or blocking, clean up). Blur is not in the level: it is lost detail that the model
restores at every strength, not an artefact to remove.

numpy and Pillow only: the runtime's ``evaluate`` makes docs/evaluation.md's conditions here too.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

import numpy as np
from PIL import Image, ImageFilter

from ..core.processing import JPEG_BLOCK
from ..errors import DataError

DownscaleKernel = Literal["bicubic", "bilinear", "area", "lanczos"]
_RESAMPLING = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
               "area": Image.Resampling.BOX, "lanczos": Image.Resampling.LANCZOS}

# RMS change of the LR, in 8-bit levels, that is strength 1 (JPEG quality 40 on a textured crop,
# or Gaussian noise of sigma 8). Noise sigma 3 on a face is ~0.37; JPEG 75 on a Yale face ~0.2.
LEVEL_UNIT = 8.0

# docs/evaluation.md, "Degraded inputs": name -> the steps after the HR, applied in this order.
CONDITIONS: dict[str, tuple[tuple[str, float], ...]] = {
    "clean": (),
    "jpeg75": (("jpeg", 75),),
    "noise3": (("noise", 3.0),),
    "blur": (("blur", 0.8),),
    "camera": (("blur", 0.8), ("noise", 3.0), ("jpeg", 75)),
}


def _ordered_pair(name: str, value: Any, low_bound: float, high_bound: float) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"DegradationConfig.{name} must be a (low, high) pair, got {value!r}") from None
    if not low_bound <= low <= high <= high_bound:
        raise ValueError(f"DegradationConfig.{name} must satisfy {low_bound:g} <= low <= high <= {high_bound:g}, "
                         f"got ({low:g}, {high:g})")
    return low, high


@dataclass(frozen=True)
class DegradationConfig:
    """The ranges training draws degradations from; saved in checkpoints and the ONNX metadata.

    Defaults cover docs/evaluation.md's range (blur sigma up to 1.2, JPEG quality 50-95, noise sigma
    up to 5, any order after the down-scale) with a margin.
    """

    clean_share: float = 0.3  # pairs left exactly as docs/evaluation.md's clean bicubic half
    blur_probability: float = 0.5  # of the noisy or compressed pairs, as the kernel's variety
    blur_sigma: tuple[float, float] = (0.3, 1.5)  # Gaussian blur of the HR, in HR pixels
    anisotropic_share: float = 0.3  # of the blurred pairs: two sigmas from the range and a random angle
    downscale_kernels: tuple[DownscaleKernel, ...] = ("bicubic", "bilinear", "area")
    noise_probability: float = 0.6
    noise_sigma: tuple[float, float] = (0.5, 6.0)  # in 8-bit levels (Poisson: at mid-gray)
    poisson_share: float = 0.3  # of the noisy pairs: signal-dependent (shot) noise instead of Gaussian
    jpeg_probability: float = 0.7
    jpeg_quality: tuple[int, int] = (40, 95)
    # JPEG's 8x8 blocks at a random offset from the LR's corner, as in a photo cropped after it was
    # compressed (and in a large image's estimation crops): the level estimator's strides are the
    # JPEG grid's, and one trained on aligned blocks only read every shifted one as clean.
    jpeg_grid_shift: bool = True

    def __post_init__(self):
        for name in ("clean_share", "blur_probability", "anisotropic_share", "noise_probability",
                     "poisson_share", "jpeg_probability"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"DegradationConfig.{name} must be between 0 and 1, got {value!r}")
        object.__setattr__(self, "blur_sigma", _ordered_pair("blur_sigma", self.blur_sigma, 0.0, 5.0))
        object.__setattr__(self, "noise_sigma", _ordered_pair("noise_sigma", self.noise_sigma, 0.0, 50.0))
        low, high = _ordered_pair("jpeg_quality", self.jpeg_quality, 1, 100)
        if low != int(low) or high != int(high):
            raise ValueError(f"DegradationConfig.jpeg_quality must be whole qualities, got {self.jpeg_quality!r}")
        object.__setattr__(self, "jpeg_quality", (int(low), int(high)))
        kernels = tuple(self.downscale_kernels)
        unknown = [k for k in kernels if k not in _RESAMPLING]
        if not kernels or unknown:
            raise ValueError(f"DegradationConfig.downscale_kernels must be some of {list(get_args(DownscaleKernel))}, "
                             f"got {list(kernels)}")
        object.__setattr__(self, "downscale_kernels", kernels)
        if not isinstance(self.jpeg_grid_shift, bool):
            raise ValueError(f"DegradationConfig.jpeg_grid_shift must be true or false, got {self.jpeg_grid_shift!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DegradationConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown DegradationConfig keys {unknown}; known: {sorted(known)}")
        # Runs saved before jpeg_grid_shift existed drew every JPEG on the aligned grid.
        return cls(**{"jpeg_grid_shift": False, **values})


# ---- the steps, each on 8-bit PIL images ("L" or "RGB"), each returning 8-bit ----

def gaussian_blur(image: Image.Image, sigma: float) -> Image.Image:
    """Pillow's Gaussian blur (docs/evaluation.md's), sigma in pixels."""
    return image.filter(ImageFilter.GaussianBlur(sigma)) if sigma > 0 else image


def anisotropic_blur(image: Image.Image, sigma_x: float, sigma_y: float, angle: float) -> Image.Image:
    """A Gaussian with sigmas along axes rotated by ``angle`` (radians); edges replicated."""
    radius = max(1, int(np.ceil(3 * max(sigma_x, sigma_y))))
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1].astype(np.float64)
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = cos * x + sin * y, -sin * x + cos * y
    kernel = np.exp(-0.5 * ((u / max(sigma_x, 1e-3)) ** 2 + (v / max(sigma_y, 1e-3)) ** 2))
    kernel /= kernel.sum()
    pixels = np.asarray(image, dtype=np.float64)
    planes = pixels[..., None] if pixels.ndim == 2 else pixels
    padded = np.pad(planes, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape, axis=(0, 1))
    blurred = np.einsum("hwcyx,yx->hwc", windows, kernel)
    return _from_levels(blurred[..., 0] if pixels.ndim == 2 else blurred, image.mode)


def downscale(image: Image.Image, scale: int, kernel: str = "bicubic") -> Image.Image:
    """1/scale of the size with one of Pillow's filters (which anti-alias when they shrink)."""
    return image.resize((image.width // scale, image.height // scale), _RESAMPLING[kernel])


def gaussian_noise(image: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    """Add N(0, sigma) in 8-bit levels to every channel, then round and clip (docs/evaluation.md)."""
    pixels = np.asarray(image, dtype=np.float64)
    return _from_levels(pixels + rng.normal(0.0, sigma, pixels.shape), image.mode)


def poisson_noise(image: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    """Shot noise whose standard deviation is ``sigma`` levels at mid-gray (128) and grows with
    the square root of the signal, as a sensor's photon noise does."""
    pixels = np.asarray(image, dtype=np.float64)
    photons_per_level = 128.0 / max(sigma, 1e-3) ** 2
    return _from_levels(rng.poisson(pixels * photons_per_level) / photons_per_level, image.mode)


def jpeg(image: Image.Image, quality: int, grid_offset: tuple[int, int] = (0, 0)) -> Image.Image:
    """Encode as JPEG at ``quality`` with Pillow's defaults and decode again. ``grid_offset`` (x, y):
    the image's corner sits that many pixels into the encoder's blocks, as in an image cropped out
    of a larger JPEG (encoded with the edge pixels repeated into the margin, which is cut off again)."""
    left, top = grid_offset
    if (left, top) != (0, 0):
        pixels = np.asarray(image)
        padded = Image.fromarray(np.pad(pixels, ((top, 0), (left, 0)) + ((0, 0),) * (pixels.ndim - 2), mode="edge"),
                                 image.mode)
        return jpeg(padded, quality).crop((left, top, left + image.width, top + image.height))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert(image.mode)


def _from_levels(values: np.ndarray, mode: str) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode)


def level_of(degraded: Image.Image, reference: Image.Image) -> float:
    """The degradation level of an LR: RMS difference from ``reference`` (the same LR before noise
    and compression) in 8-bit levels over LEVEL_UNIT, clipped to [0, 1]."""
    difference = np.asarray(degraded, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    return float(min(1.0, np.sqrt(np.mean(difference ** 2)) / LEVEL_UNIT))


# ---- docs/evaluation.md's named conditions ----

# A condition beyond the named ones (docs/evaluation.md: "other qualities, noise levels and orders of the
# steps"): STEP=VALUE steps joined by ">" in the order they apply, each value within these bounds.
CONDITION_STEP_BOUNDS = {"blur": (0.1, 5.0), "noise": (0.1, 50.0), "jpeg": (1, 100), "grid": (0, JPEG_BLOCK - 1)}
_WHOLE_STEPS = ("jpeg", "grid")


def condition_steps(condition: str) -> tuple[tuple[str, float], ...]:
    """The steps of a condition: one of docs/evaluation.md's names, or a chain such as
    "noise=5>jpeg=50" or "blur=1.2>jpeg=60>noise=2": blur (Gaussian sigma, on the HR) first if at all,
    then noise (sigma in 8-bit levels) and jpeg (quality) on the bicubic half, in the order written.
    grid=K before a jpeg step puts the image's corner K pixels into the JPEG's 8x8 blocks, across and
    down, as in an image cropped after it was compressed ("grid=3>jpeg=60")."""
    if condition in CONDITIONS:
        return CONDITIONS[condition]
    steps: list[tuple[str, float]] = []
    for part in condition.split(">"):
        step, equals, text = part.strip().partition("=")
        if step not in CONDITION_STEP_BOUNDS or not equals:
            raise DataError(f"unknown condition {condition!r}; the protocol's (docs/evaluation.md) are "
                            f"{', '.join(CONDITIONS)}, or STEP=VALUE steps joined by '>' such as "
                            f"'noise=5>jpeg=50' (STEP one of {', '.join(CONDITION_STEP_BOUNDS)}; "
                            f"{part.strip()!r} is not one)")
        low, high = CONDITION_STEP_BOUNDS[step]
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not low <= value <= high or (step in _WHOLE_STEPS and not value.is_integer()):
            kind = "a whole number" if step in _WHOLE_STEPS else "a number"
            raise DataError(f"condition {condition!r}: {step} must be {kind} from {low:g} to {high:g}, got {text!r}")
        if step == "blur" and steps:
            raise DataError(f"condition {condition!r}: blur acts on the HR, before the down-scale, so it comes first")
        steps.append((step, value))
    followed_by = [after for after, _ in steps[1:]] + [None]
    if any(step == "grid" and after != "jpeg" for (step, _), after in zip(steps, followed_by)):
        raise DataError(f"condition {condition!r}: grid=K moves the blocks of the jpeg step right after it")
    return tuple(steps)


def condition_lr(hr: Image.Image, condition: str, rng: np.random.Generator, scale: int = 2) -> Image.Image:
    """The LR that a condition (:func:`condition_steps`: a docs/evaluation.md name or a chain of
    steps) makes from an HR image.

    ``rng`` draws the noise (seed it per image for reproducible scores)."""
    image = hr
    steps = condition_steps(condition)
    for step, value in steps:
        if step == "blur":
            image = gaussian_blur(image, value)
    image = downscale(image, scale, "bicubic")
    offset = 0
    for step, value in steps:
        if step == "noise":
            image = gaussian_noise(image, value, rng)
        elif step == "grid":
            offset = int(value)
        elif step == "jpeg":
            image, offset = jpeg(image, int(value), (offset, offset)), 0
    return image


# ---- the random training pipeline ----

def degrade(hr: Image.Image, config: DegradationConfig, rng: np.random.Generator,
            scale: int = 2) -> tuple[Image.Image, float]:
    """A randomly degraded LR of ``hr`` and its level (0 for the clean share).

    Everything is drawn from ``rng``: seed it per image and epoch for a reproducible,
    resumable run, whichever process or batch the image lands in."""
    clean = downscale(hr, scale, "bicubic")
    if rng.random() < config.clean_share:
        return clean, 0.0
    steps = []
    if rng.random() < config.noise_probability:
        steps.append("noise")
    if rng.random() < config.jpeg_probability:
        steps.append("jpeg")
    if not steps:  # nothing that raises the level: the clean pair, not a blurred one at level 0
        return clean, 0.0
    image = hr
    if rng.random() < config.blur_probability:
        low, high = config.blur_sigma
        if rng.random() < config.anisotropic_share:
            image = anisotropic_blur(image, rng.uniform(low, high), rng.uniform(low, high), rng.uniform(0, np.pi))
        else:
            image = gaussian_blur(image, rng.uniform(low, high))
    image = downscale(image, scale, config.downscale_kernels[rng.integers(len(config.downscale_kernels))])
    reference = image
    for step in rng.permutation(steps):
        if step == "noise":
            sigma = rng.uniform(*config.noise_sigma)
            noise = poisson_noise if rng.random() < config.poisson_share else gaussian_noise
            image = noise(image, sigma, rng)
        else:
            quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
            # From a child stream, which leaves ``rng``'s own draws as they are: the same pair drawn
            # without jpeg_grid_shift differs only in where its blocks fall (train --keep-readings).
            left, top = rng.spawn(1)[0].integers(0, JPEG_BLOCK, 2) if config.jpeg_grid_shift else (0, 0)
            image = jpeg(image, quality, (int(left), int(top)))
    return image, level_of(image, reference)
