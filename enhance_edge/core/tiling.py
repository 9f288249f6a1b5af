"""Upscaling a plane in overlapping tiles, so any image fits a memory budget.

Each tile is fed to the model with a context margin at least as wide as the model's
receptive field, so its central part is what the model computes on the whole image; the
margin is then cropped and the tiles are put side by side. For a model whose receptive field
is unknown (a fallback margin), neighbouring tiles also overlap by a few pixels and are blended
with complementary linear ramps (weights sum to one), which hides the seam an underestimated
field would leave. Blending costs passes over the whole output (0.4 s of a 12-megapixel
photo's 3.7 s with `fast`), so a model that states its field is not blended.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# Context margin for a model whose generator config is missing from its metadata: wider than
# the report's generator's receptive field (34 pixels), and the blend hides what it misses.
FALLBACK_MARGIN = 48
# Feature width assumed for the memory estimate of a model without a generator config.
FALLBACK_CHANNELS = 64
# Half the blend band between neighbouring tiles, in input pixels (so they overlap by 8).
HALF_BLEND = 4
# Below this the margins cost more than the tiles themselves.
MIN_TILE = 64


def receptive_radius(generator_config: dict[str, Any] | None) -> int | None:
    """How far (in input pixels) an output pixel of an enhance-edge generator sees, from its
    config: what the exporter writes as model.RECEPTIVE_RADIUS_KEY (and ModelInfo computes for
    files written before that key); None for a missing or unreadable config.

    Every 3x3 convolution widens the view by one pixel: the head, two per residual block (or one
    per convolution of the "rep" body) and the tail. The bicubic skip path reads 2 pixels around
    (with replicate padding at the edge, which a tile edge inside the image must not see either).
    """
    if generator_config is None:
        return None
    try:
        convolutions = 2 + 2 * int(generator_config["residual_blocks"]) + int(generator_config.get("rep_convs", 0))
    except (TypeError, KeyError, ValueError, AttributeError):
        return None
    skip = 2 if generator_config.get("skip") == "bicubic" else 0
    return max(convolutions, skip)


def working_bytes_per_pixel(generator_config: dict[str, Any] | None) -> int:
    """Peak onnxruntime memory per input pixel of one model run, from the generator's config:
    what the exporter writes as model.WORKING_BYTES_KEY (and ModelInfo computes for files
    written before that key).

    Measured on the report's residual generator (20 channels): about 550 bytes per pixel for
    tiles of 256-512 pixels, i.e. some 7 live feature maps of C float32 channels. The plain
    chain of the "rep" body keeps fewer: one 1024x1024 run grew the peak by 536 bytes per pixel
    at 32 channels and 236 at 16 (onnxruntime 1.32, 2 threads, fp32; the int8 file 557), about
    4 maps, counted as 5 for a margin. This adds the input and the scale**2 output planes.
    """
    config = generator_config if isinstance(generator_config, dict) else {}
    try:
        channels, scale = int(config.get("channels", FALLBACK_CHANNELS)), int(config.get("scale", 2))
    except (TypeError, ValueError):
        channels, scale = FALLBACK_CHANNELS, 2
    live_maps = 5 if config.get("body") == "rep" else 7
    return 4 * (live_maps * channels + 2 * scale**2 + 2)


def half_blend(tile: int, blend: bool = True) -> int:
    """The blend half-width for tiles of ``tile`` pixels (narrower for tiny tiles; 0 unblended)."""
    return min(HALF_BLEND, tile // 4) if blend else 0


def choose_tile(width: int, height: int, budget_bytes: int, bytes_per_pixel: int, margin: int,
                blend: bool = True) -> int | None:
    """The largest tile whose model run (with its margins, and blend bands if ``blend``) fits
    ``budget_bytes``, or None when the whole image fits."""
    if width * height * bytes_per_pixel <= budget_bytes:
        return None
    side = math.isqrt(max(budget_bytes, 0) // bytes_per_pixel)
    tile = side - 2 * margin - (2 * HALF_BLEND if blend else 0)
    return max(tile, MIN_TILE)


@dataclass(frozen=True)
class Span:
    """One tile along one axis: [start, end) is computed and blended, ``owned`` pixels are its
    share of the image (the spans' owned lengths add up to the axis length)."""

    start: int
    end: int
    owned: int
    ramp_in: bool  # blends in from the previous tile
    ramp_out: bool  # blends out into the next tile


def spans(length: int, tile: int, half: int) -> list[Span]:
    """Split [0, length) into tiles of at most ``tile`` owned pixels overlapping by 2*half."""
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    count = math.ceil(length / tile)
    cuts = [round(k * length / count) for k in range(count + 1)]
    result = []
    for k in range(count):
        first, last = k == 0, k == count - 1
        start = cuts[k] if first else cuts[k] - half
        end = cuts[k + 1] if last else cuts[k + 1] + half
        result.append(Span(start, end, cuts[k + 1] - cuts[k], ramp_in=not first, ramp_out=not last))
    return result


def blend_weights(span: Span, half: int, scale: int) -> np.ndarray:
    """Blend weights over the span's output pixels: linear ramps across each overlap; the
    ramps of two neighbours are complementary, so the blended weights sum to one."""
    weights = np.ones((span.end - span.start) * scale, dtype=np.float32)
    width = 2 * half * scale
    if width:
        ramp = (np.arange(width, dtype=np.float32) + 0.5) / width
        if span.ramp_in:
            weights[:width] = ramp
        if span.ramp_out:
            weights[-width:] = ramp[::-1]
    return weights


def tile_count(width: int, height: int, tile: int | None) -> int:
    """How many model runs upscale_tiled makes of a width x height plane in tiles of ``tile``; one untiled (None)."""
    if tile is None:
        return 1
    half = half_blend(tile)
    return len(spans(height, tile, half)) * len(spans(width, tile, half))


def upscale_tiled(plane: np.ndarray, run: Callable[[np.ndarray], np.ndarray], scale: int, tile: int,
                  margin: int, progress: Callable[[int], None] | None = None, blend: bool = True) -> np.ndarray:
    """Upscale a float32 (H, W) plane with ``run`` (plane -> scale x plane) tile by tile.
    ``run`` returns a new array each call: its output is weighted in place. ``blend``: overlap
    and blend neighbouring tiles (for a ``margin`` that may not cover the receptive field).

    ``progress`` is called after each tile with the number of input pixels it owned.
    """
    height, width = plane.shape
    half = half_blend(tile, blend)
    out = (np.zeros if half else np.empty)((height * scale, width * scale), dtype=np.float32)
    for row in spans(height, tile, half):
        row_weights = blend_weights(row, half, scale)[:, None]
        top, bottom = max(0, row.start - margin), min(height, row.end + margin)
        for column in spans(width, tile, half):
            left, right = max(0, column.start - margin), min(width, column.end + margin)
            result = run(np.ascontiguousarray(plane[top:bottom, left:right]))
            y0, x0 = (row.start - top) * scale, (column.start - left) * scale
            core = result[y0:y0 + (row.end - row.start) * scale, x0:x0 + (column.end - column.start) * scale]
            target = out[row.start * scale:row.end * scale, column.start * scale:column.end * scale]
            if half:
                # in place: a temporary per tile would add passes over the whole output (190 MB at 48 MP)
                core *= row_weights
                core *= blend_weights(column, half, scale)
                target += core
            else:
                target[...] = core
            if progress is not None:
                progress(row.owned * column.owned)
    return out
