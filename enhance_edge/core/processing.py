"""Pre- and post-processing shared by training, export checks and the runtime.

Plain numpy so that the torch-free runtime owns it; training and export import it from
here instead of keeping copies. The model convention is float32, NCHW, values in [0, 1].
"""

from __future__ import annotations

import numpy as np

from ..errors import ImageError

_MAX_BY_DTYPE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def to_unit_float(pixels: np.ndarray) -> np.ndarray:
    """Integer pixels (uint8 or uint16, any shape) to float32 in [0, 1]."""
    scale = _MAX_BY_DTYPE.get(pixels.dtype)
    if scale is None:
        raise ImageError(f"unsupported pixel type {pixels.dtype}; expected uint8 or uint16")
    return pixels.astype(np.float32) / np.float32(scale)


def from_unit_float(values: np.ndarray, dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """Float values in [0, 1] to rounded, clipped integer pixels, as a user would save them."""
    dtype = np.dtype(dtype)
    scale = _MAX_BY_DTYPE.get(dtype)
    if scale is None:
        raise ImageError(f"unsupported pixel type {dtype}; expected uint8 or uint16")
    return np.clip(np.rint(values * scale), 0, scale).astype(dtype)


def to_batch(planes: list[np.ndarray]) -> np.ndarray:
    """Same-sized 2-D float planes to one NCHW batch with a single channel."""
    return np.stack(planes)[:, None, :, :].astype(np.float32, copy=False)


# ITU-R BT.601 full-range YCbCr, as JPEG and Pillow's "YCbCr" mode define it; values in [0, 1].
_RGB_TO_YCBCR = np.array([[0.299, 0.587, 0.114],
                          [-0.168736, -0.331264, 0.5],
                          [0.5, -0.418688, -0.081312]], dtype=np.float32)
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR).astype(np.float32)
_CHROMA_OFFSET = np.array([0.0, 0.5, 0.5], dtype=np.float32)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB in [0, 1] to (H, W, 3) YCbCr in [0, 1]."""
    return rgb @ _RGB_TO_YCBCR.T + _CHROMA_OFFSET


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr` (not clipped)."""
    return (ycbcr - _CHROMA_OFFSET) @ _YCBCR_TO_RGB.T


def _halve(values: np.ndarray) -> np.ndarray:
    """Sum 2x2 blocks of the first two axes (odd sizes padded with zeros)."""
    height, width = values.shape[:2]
    padded = np.pad(values, [(0, height % 2), (0, width % 2)] + [(0, 0)] * (values.ndim - 2))
    h, w = padded.shape[0] // 2, padded.shape[1] // 2
    return padded.reshape(h, 2, w, 2, *values.shape[2:]).sum(axis=(1, 3))


def fill_transparent(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Give fully transparent pixels the colour of their visible surroundings.

    Transparent pixels usually hold black (or junk); interpolation and the model would
    smear it into the visible edge as a dark fringe. A push-pull fill (average the visible
    colours over a pyramid of 2x2 blocks, then pull the coarse averages back into the holes)
    costs O(pixels) and leaves every visible pixel unchanged. ``colour`` is (H, W, C)
    integer pixels, ``alpha`` (H, W); returns a new array of the same type.
    """
    hole = alpha == 0
    if not hole.any() or hole.all():
        return colour
    weight = (~hole).astype(np.float32)
    weighted = colour.astype(np.float32) * weight[..., None]
    levels = []
    while True:
        levels.append((weighted, weight))
        if weight.min() > 0:
            break
        weighted, weight = _halve(weighted), _halve(weight)
    filled = weighted / weight[..., None]
    for weighted, weight in reversed(levels[:-1]):
        coarse = filled.repeat(2, axis=0).repeat(2, axis=1)[:weight.shape[0], :weight.shape[1]]
        seen = weight[..., None] > 0
        filled = np.where(seen, weighted / np.where(seen, weight[..., None], 1), coarse)
    result = colour.copy()
    result[hole] = np.rint(filled[hole]).astype(colour.dtype)
    return result


def resize_plane_rows(plane, size: tuple[int, int], top: int, bottom: int) -> np.ndarray:
    """Rows [top, bottom) of a bicubic resize of a mode-"F" image to ``size`` (width, height).

    Pillow reads the filter's support outside the box, so strips equal the whole resize
    (to float rounding) while only one strip is in memory at a time.
    """
    from PIL import Image

    width, height = size
    step = plane.height / height
    return np.asarray(plane.resize((width, bottom - top), Image.Resampling.BICUBIC,
                                   box=(0, top * step, plane.width, bottom * step)))


def added_detail(plane: np.ndarray, upscaled: np.ndarray, scale: int) -> float:
    """What a model added to a float32 (H, W) plane in [0, 1]: the mean squared difference, in 8-bit
    levels squared, between its (scale*H, scale*W) output and the plane's bicubic upscale.

    int8's activation rounding adds a near-constant noise to every output (0.2-0.6 levels²,
    MODEL_CARD.md "int8: where the loss comes from"); it costs PSNR only where the model's own error
    is as small, and that error follows the detail the model adds. An int8 model's metadata states
    the least detail at which its noise stayed hidden (`quantize`); with less, the runtime reruns
    the image in fp32.
    """
    from PIL import Image

    size = (plane.shape[1] * scale, plane.shape[0] * scale)
    bicubic = np.asarray(Image.fromarray(plane.astype(np.float32, copy=False), "F").resize(
        size, Image.Resampling.BICUBIC))
    return _mean_square_levels(upscaled - bicubic)  # on the runtime's hot path: one temporary


def input_detail(plane: np.ndarray) -> float:
    """The fine detail of a float32 (H, W) plane in [0, 1]: the mean square of its 4-neighbour Laplacian,
    in 8-bit levels squared (0 for a plane under 3 pixels a side, which has no inner pixel).

    What a model adds (added_detail) follows what its input holds at the finest scale (log
    correlation 0.94-0.96 on the calibration images of `fast-clean` and `fast`): an int8 model's
    metadata states the input detail under which the detail it would add nearly always falls
    short, and the runtime runs such an input in fp32 without trying int8 first."""
    if min(plane.shape) < 3:
        return 0.0
    inner = plane[1:-1, 1:-1]
    return _mean_square_levels(4 * inner - plane[:-2, 1:-1] - plane[2:, 1:-1] - plane[1:-1, :-2] - plane[1:-1, 2:])


def _mean_square_levels(values: np.ndarray) -> float:
    """The mean square of float32 values on the [0, 1] scale, in 8-bit levels squared: one float32 dot
    product, no squared copy."""
    flat = values.ravel()
    return float(np.dot(flat, flat)) / flat.size * 255**2
