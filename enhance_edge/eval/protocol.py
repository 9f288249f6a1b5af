"""docs/evaluation.md in code: how HR/LR pairs are made and how PSNR/SSIM are scored.

Every quality figure enhance-edge reports (training, evaluate, benchmarks, tests) comes
through these functions, so numbers stay comparable across runs and models.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import MissingExtraError

# The report's setting: 168x192 Yale faces become 92x112 HR and 46x56 LR (width x height).
REPORT_HR_SIZE = (92, 112)

# Subject-disjoint split of the Extended Yale B cropped faces (docs/evaluation.md).
YALE_VALIDATION_SUBJECTS = ("yaleB29", "yaleB30", "yaleB31", "yaleB32", "yaleB33")
YALE_TEST_SUBJECTS = ("yaleB34", "yaleB35", "yaleB36", "yaleB37", "yaleB38", "yaleB39")

# SSIM (scikit-image's default 7x7 window) needs 7 pixels a side; HR sides are also even (x2).
SSIM_WINDOW = 7
MIN_HR_SIDE = 8


def make_hr(image: Image.Image, hr_size: tuple[int, int] | None = REPORT_HR_SIZE, scale: int = 2) -> Image.Image:
    """The high-resolution target: Lanczos resize to ``hr_size`` (w, h), or crop to a multiple
    of ``scale`` (even size for x2)."""
    if hr_size is not None:
        return image.resize(hr_size, Image.Resampling.LANCZOS)
    width, height = image.size
    return image.crop((0, 0, width - width % scale, height - height % scale))


def make_lr(hr: Image.Image, scale: int = 2) -> Image.Image:
    """The low-resolution input: Pillow bicubic at 1/scale of the HR size."""
    width, height = hr.size
    return hr.resize((width // scale, height // scale), Image.Resampling.BICUBIC)


def interpolate(lr: Image.Image, method: str, scale: int = 2) -> Image.Image:
    """Upscale with a classical interpolator: 'nearest', 'bicubic', 'lanczos' (Pillow)."""
    filters = {
        "nearest": Image.Resampling.NEAREST,
        "bicubic": Image.Resampling.BICUBIC,
        "lanczos": Image.Resampling.LANCZOS,
    }
    width, height = lr.size
    return lr.resize((width * scale, height * scale), filters[method])


def _skimage_metrics():
    try:
        from skimage import metrics
    except ImportError as exc:
        raise MissingExtraError("PSNR/SSIM scoring", "eval", "scikit-image") from exc
    return metrics


def psnr(hr: np.ndarray, out: np.ndarray) -> float:
    """PSNR of one 8-bit image against its HR reference, whole image, no border crop."""
    return float(_skimage_metrics().peak_signal_noise_ratio(hr, out, data_range=255))


def ssim(hr: np.ndarray, out: np.ndarray) -> float:
    """SSIM of one 8-bit image against its HR reference."""
    return float(_skimage_metrics().structural_similarity(hr, out, data_range=255))


def luma_image(image: Image.Image) -> Image.Image:
    """Y of ITU-R BT.601 YCbCr (Pillow's "YCbCr" mode) of an 8-bit RGB image; gray as it is."""
    return image.convert("YCbCr").getchannel("Y") if image.mode == "RGB" else image


def luma(pixels: np.ndarray) -> np.ndarray:
    """:func:`luma_image` of 8-bit (H, W, 3) RGB pixels; gray (H, W) as it is."""
    return pixels if pixels.ndim == 2 else np.asarray(luma_image(Image.fromarray(pixels, "RGB")))


def score(hrs: list[np.ndarray], outs: list[np.ndarray]) -> dict[str, float]:
    """Mean PSNR and SSIM over images, each computed per image (docs/evaluation.md).

    Gray images are scored as they are, colour (RGB) ones on their luma; where there are
    colour images, "rgb_psnr" is their mean RGB PSNR as well.
    """
    lumas = [(luma(h), luma(o)) for h, o in zip(hrs, outs)]
    scores = {
        "psnr": float(np.mean([psnr(h, o) for h, o in lumas])),
        "ssim": float(np.mean([ssim(h, o) for h, o in lumas])),
    }
    colour = [(h, o) for h, o in zip(hrs, outs) if h.ndim == 3]
    if colour:
        scores["rgb_psnr"] = float(np.mean([psnr(h, o) for h, o in colour]))
    return scores
