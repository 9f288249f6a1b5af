"""Images beyond the Yale faces for int8 calibration and for the per-image gate of `quantize`.

Calibrated on lab-lit Yale faces alone, int8 models lost up to 2.8 dB on clean, smooth photos
(MODEL_CARD.md, "int8: where the loss comes from"): their activations reach ranges no Yale face
does. The calibration mix adds natural images (scikit-image's bundled CC0 / public-domain photos
and textures) and synthetic content (smooth gradients, high-key, low-key, text). The gate sets
are images calibration never sees: scikit-image's astronaut portrait and its LFW face subset (at
its own resolution, and blown up to the faces' size), and synthetic images drawn with another
seed. Everything here is luma (8-bit gray), HR side; the LR inputs are made from it as
docs/evaluation.md makes them (bicubic).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from enhance_edge.eval.protocol import luma, make_hr, make_lr

# scikit-image's bundled images whose docstrings state CC0 or the public domain. Never the
# astronaut nor the LFW subset: those are gate images.
CALIBRATION_PHOTOS = ("camera", "coffee", "chelsea", "rocket", "hubble_deep_field", "brick", "grass", "gravel",
                      "clock", "cell", "text", "retina")
GATE_PHOTOS = ("astronaut",)
SYNTHETIC_KINDS = ("gradient", "high_key", "low_key", "text")
CALIBRATION_SEED = 0
GATE_SEED = 1  # another draw of the synthetic kinds: gate images are never calibration images
# The gate sets of natural content (beside the validation faces), whose mean loss against the ground
# truth the gate limits; on the others only each image's difference from fp32 is gated. "lfw
# upsampled" is not natural: 25-pixel thumbnails blown up ~4x are smoother than any photo (fp32 is
# 44 dB from their truth), so half a level of int8 noise costs 0.15 dB there while it costs nothing
# on the same faces at their own resolution (fast, issue 27: 0.148 against -0.007 dB).
NATURAL_GATE_SETS = ("astronaut", "lfw faces")
LFW_GATE_FACES = 16


def _skimage_image(name: str) -> np.ndarray:
    import skimage.data

    return luma(getattr(skimage.data, name)())


def _unit_to_uint8(values: np.ndarray) -> np.ndarray:
    return (np.clip(values, 0, 1) * 255).round().astype(np.uint8)


def _blobs(rng: np.random.Generator, height: int, width: int, count: int = 5) -> np.ndarray:
    """Soft Gaussian blobs in [-1, 1]: smooth content without edges."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    field = np.zeros((height, width))
    for _ in range(count):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.1, 0.5) * max(height, width)
        field += rng.uniform(-1, 1) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2))
    return np.clip(field, -1, 1)


def gradient(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth gradient at a random angle between two random levels, with a soft radial term:
    sky, studio backdrops, out-of-focus backgrounds."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * x / width + np.sin(angle) * y / height)
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-9)
    low, high = sorted(rng.uniform(0, 1, 2))
    return _unit_to_uint8(low + (high - low) * ramp + 0.08 * _blobs(rng, height, width, 2))


def high_key(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Bright, low-contrast content near white, partly clipped at 255 (an over-exposed portrait)."""
    return _unit_to_uint8(0.9 + 0.12 * _blobs(rng, height, width) + 0.04 * rng.uniform(-1, 1))


def low_key(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Dark content near black, partly clipped at 0 (night, under-exposure)."""
    return _unit_to_uint8(0.08 + 0.1 * _blobs(rng, height, width) + 0.03 * rng.uniform(-1, 1))


def text(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Dark lines of text on a light page, or light on dark: hard edges at every scale."""
    dark_on_light = rng.random() < 0.7
    background, ink = (int(rng.integers(200, 256)), int(rng.integers(0, 60)))
    if not dark_on_light:
        background, ink = ink, background
    image = Image.new("L", (width, height), background)
    draw = ImageDraw.Draw(image)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;"))
    top = int(rng.integers(-4, 4))
    while top < height:
        size = int(rng.integers(8, 24))
        line = "".join(rng.choice(letters, 40))
        draw.text((int(rng.integers(-10, 4)), top), line, fill=ink, font=ImageFont.load_default(size))
        top += size + int(rng.integers(1, 6))
    return np.asarray(image)


SYNTHETIC = {"gradient": gradient, "high_key": high_key, "low_key": low_key, "text": text}


def random_crops(image: np.ndarray, height: int, width: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` crops of (height, width) at random places; a smaller image is Lanczos-resized up first."""
    if image.shape[0] < height or image.shape[1] < width:
        factor = max(height / image.shape[0], width / image.shape[1])
        size = (int(np.ceil(image.shape[1] * factor)), int(np.ceil(image.shape[0] * factor)))
        image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))
    tops = rng.integers(0, image.shape[0] - height + 1, count)
    lefts = rng.integers(0, image.shape[1] - width + 1, count)
    return np.stack([image[t:t + height, s:s + width] for t, s in zip(tops, lefts)])


def calibration_mix(hr_shape: tuple[int, int], per_kind: int = 8,
                    seed: int = CALIBRATION_SEED) -> dict[str, np.ndarray]:
    """HR luma images of (height, width) ``hr_shape`` for calibration, by kind: "photos" (crops of
    CALIBRATION_PHOTOS, ``per_kind`` // 2 of each, at least one) and ``per_kind`` of each synthetic kind."""
    rng = np.random.default_rng(seed)
    height, width = hr_shape
    mix = {"photos": np.concatenate([random_crops(_skimage_image(name), height, width, max(1, per_kind // 2), rng)
                                     for name in CALIBRATION_PHOTOS])}
    for kind in SYNTHETIC_KINDS:
        mix[kind] = np.stack([SYNTHETIC[kind](rng, height, width) for _ in range(per_kind)])
    return mix


def gate_images(hr_shape: tuple[int, int], scale: int, per_kind: int = 4,
                seed: int = GATE_SEED) -> dict[str, np.ndarray]:
    """HR luma images that calibration never sees, by set, each set of one size: "astronaut" (the
    whole portrait and crops of it), "lfw faces" (scikit-image's LFW subset at its own resolution,
    cropped to a multiple of ``scale``, as docs/evaluation.md scores LFW), "lfw upsampled" (the same
    faces blown up ~4x to ``hr_shape`` as docs/evaluation.md makes HR faces: smooth as the
    synthetic kinds), and ``per_kind`` synthetic gradients, high-key, low-key and text images drawn
    with another seed than calibration's."""
    import skimage.data

    rng = np.random.default_rng(seed)
    height, width = hr_shape
    portrait = _skimage_image("astronaut")
    side = portrait.shape[0] // 2 // scale * scale
    # the whole portrait (halved, so that it is one size with its crops), the face, the suit's badge
    astronaut = np.stack([np.asarray(make_hr(Image.fromarray(portrait), (side, side), scale)),
                          portrait[20:20 + side, 100:100 + side], portrait[256:256 + side, 0:side]])
    faces = (skimage.data.lfw_subset()[:LFW_GATE_FACES] * 255).round().astype(np.uint8)
    face_side = faces.shape[1] // scale * scale
    upsampled = np.stack([np.asarray(make_hr(Image.fromarray(face), (width, height), scale)) for face in faces])
    gates = {"astronaut": astronaut, "lfw faces": faces[:, :face_side, :face_side], "lfw upsampled": upsampled}
    for kind in ("gradient", "high_key", "low_key", "text"):
        gates[kind.replace("_", "-")] = np.stack([SYNTHETIC[kind](rng, height, width) for _ in range(per_kind)])
    return gates


def lr_of(hrs: np.ndarray, scale: int) -> np.ndarray:
    """The LR inputs of same-sized HR images, made as docs/evaluation.md makes them."""
    return np.stack([np.asarray(make_lr(Image.fromarray(hr), scale)) for hr in hrs])
