"""The size an upscale returns: the model's own scale, any factor, or a target width and height.

A model upscales by its fixed integer scale; other sizes are that result resized with Lanczos,
as Real-ESRGAN's ``--outscale`` does. The model whose scale is the smallest at or above the
factor does the upscaling (``model_scale_for``, model.bundled_scale_for), so Lanczos only ever shrinks its output or,
beyond the largest model, enlarges it as little as possible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from ..errors import EnhanceEdgeError


MAX_SIDE = 2**31 - 1  # a PNG side is a 31-bit number, and Pillow's a C int


@dataclass(frozen=True)
class OutputSize:
    """``outscale`` times the input, or ``width`` and/or ``height`` pixels (one alone keeps the
    aspect ratio), or, with none of them, the model's own scale."""

    outscale: float | None = None
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        if self.outscale is not None and (self.width is not None or self.height is not None):
            target = ", ".join(f"{name} {value}" for name, value in (("width", self.width), ("height", self.height))
                               if value is not None)
            raise EnhanceEdgeError(f"give outscale ({self.outscale:g}) or a target width and height ({target}), "
                                   f"not both")
        if self.outscale is not None and not (math.isfinite(self.outscale) and self.outscale > 0):
            raise EnhanceEdgeError(f"outscale must be a number > 0, got {self.outscale!r}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise EnhanceEdgeError(f"{name} must be a whole number of pixels >= 1, got {value!r}")
        # Larger sizes are no image a format can hold, and their arithmetic overflows floats and C ints.
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and value > MAX_SIDE:
                raise EnhanceEdgeError(f"{name} must be at most {MAX_SIDE:,} pixels, the longest side an image can "
                                       f"have (PNG's and Pillow's limit), got {value}")
        if self.outscale is not None and self.outscale > MAX_SIDE:
            raise EnhanceEdgeError(f"outscale must be at most {MAX_SIDE:,}, a factor past which every result is "
                                   f"longer than an image's side can be, got {self.outscale:g}")

    @property
    def is_model_scale(self) -> bool:
        """True when the output is the model's own result, not resized."""
        return self.outscale is None and self.width is None and self.height is None

    def for_input(self, width: int, height: int, scale: int) -> tuple[int, int]:
        """The output size of a width x height input upscaled by a x``scale`` model."""
        if self.outscale is not None:
            return max(1, round(width * self.outscale)), max(1, round(height * self.outscale))
        if self.width is not None and self.height is not None:
            return self.width, self.height
        if self.width is not None:
            return self.width, max(1, round(height * self.width / width))
        if self.height is not None:
            return max(1, round(width * self.height / height)), self.height
        return width * scale, height * scale

    def suffix(self, scale: int) -> str:
        """The default name suffix of outputs written beside their inputs: "_x2", "_x3.5", "_w800"."""
        if self.outscale is not None:
            return f"_x{self.outscale:g}"
        if self.width is not None or self.height is not None:
            return "".join(f"_{letter}{value}" for letter, value in (("w", self.width), ("h", self.height))
                           if value is not None)
        return f"_x{scale}"

    def describe(self, scale: int) -> str:
        """How an output of this size is made, for provenance tags and reports."""
        if self.is_model_scale:
            return f"x{scale}"
        if self.outscale is not None:
            target = f"x{self.outscale:g}"
        elif self.width is not None and self.height is not None:
            target = f"{self.width}x{self.height} pixels"
        else:
            target = f"{self.width} pixels wide" if self.width is not None else f"{self.height} pixels high"
        return f"x{scale}, resized with Lanczos to {target}"


def model_scale_for(factor: float, scales: tuple[int, ...]) -> int:
    """Of the available model scales, the smallest at or above ``factor``, else the largest."""
    at_or_above = [scale for scale in sorted(scales) if scale >= factor - 1e-9]
    return at_or_above[0] if at_or_above else max(scales)


def resize_output(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The model's result resized to ``size`` with Lanczos (alpha premultiplied by Pillow); itself
    when it already has that size."""
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS)
