"""Pre- and post-processing shared by training, export checks and the runtime.

Plain numpy so that the torch-free runtime owns it; training and export import it from
here instead of keeping copies. The model convention is float32, NCHW, values in [0, 1].
"""

from __future__ import annotations

import numpy as np

from ..errors import ImageError

_MAX_BY_DTYPE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
# A JPEG block's side in pixels (luma; Pillow's 4:2:0 chroma blocks cover 16): the grid that the
# level estimator's strides share with the blocking it reads.
JPEG_BLOCK = 8


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


# ITU-R BT.601 full-range YCbCr, as JPEG and Pillow's "YCbCr" mode define it, for RGB in [0, 1]:
# Y in [0, 1], Cb and Cr here centred on 0 (in [-0.5, 0.5]; JPEG and Pillow store 128 + 255 x
# it: chroma_pixels). Centred, chroma needs no offset back, and a linear resize keeps it centred.
_RGB_TO_YCBCR = np.array([[0.299, 0.587, 0.114],
                          [-0.168736, -0.331264, 0.5],
                          [0.5, -0.418688, -0.081312]], dtype=np.float32)
# Y, Cb, Cr to RGB pixel values in [0, 255]. R takes no Cb and B no Cr: their entries in the
# inverse, from the rounded BT.601 weights, are below 0.001 of a level.
_YCBCR_TO_PIXELS = np.linalg.inv(_RGB_TO_YCBCR.astype(np.float64)) * 255.0
_R_FROM_CR = np.float32(_YCBCR_TO_PIXELS[0, 2])
_G_FROM_CB, _G_FROM_CR = np.float32(_YCBCR_TO_PIXELS[1, 1]), np.float32(_YCBCR_TO_PIXELS[1, 2])
_B_FROM_CB = np.float32(_YCBCR_TO_PIXELS[2, 1])


def rgb_to_luma_chroma(rgb: np.ndarray, luma: np.ndarray, chroma: np.ndarray) -> None:
    """(H, W, 3) uint8 RGB into float32 planes: ``luma`` (H, W) the Y in [0, 1] the model sees,
    ``chroma`` (2, H, W) Cb and Cr centred on 0."""
    unit = to_unit_float(rgb)
    np.matmul(unit, _RGB_TO_YCBCR[0], out=luma)
    for plane, weights in zip(chroma, _RGB_TO_YCBCR[1:]):
        np.matmul(unit, weights, out=plane)


def chroma_pixels(plane: np.ndarray) -> np.ndarray:
    """A centred chroma plane as JPEG and Pillow store it: 128 + 255 x the value, rounded, uint8."""
    return np.clip(np.rint(plane * np.float32(255.0) + np.float32(128.0)), 0, 255).astype(np.uint8)


def ycbcr_to_rgb_pixels(luma: np.ndarray, cb: np.ndarray, cr: np.ndarray, out: np.ndarray) -> None:
    """Inverse of :func:`rgb_to_luma_chroma` for (H, W) float32 planes (Y in [0, 1], chroma
    centred), rounded and clipped into the uint8 pixels ``out[..., :3]`` of an (H, W, C) array.

    Channel by channel, in as few passes as the matrix allows (an upscaled photo's output is 4x its
    input, 48 megapixels for a 12-megapixel photo): each sum starts 0.5 high and the clipped value is
    truncated, which rounds as from_unit_float does except at exact halves (up, not to even).
    """
    base = luma * np.float32(255.0)
    base += np.float32(0.5)
    channel = np.empty(luma.shape, np.float32)
    for index, terms in enumerate([((cr, _R_FROM_CR),), ((cb, _G_FROM_CB), (cr, _G_FROM_CR)), ((cb, _B_FROM_CB),)]):
        (first, weight), *rest = terms
        np.multiply(first, weight, out=channel)
        for plane, plane_weight in rest:
            channel += plane * plane_weight
        channel += base
        np.clip(channel, 0, 255, out=channel)
        out[..., index] = channel


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

