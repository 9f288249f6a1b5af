"""One run's settings: what `enhance-edge upscale`, the Python API, the web page and a cluster run
pass whole to the core, validated once when it is made.

UpscaleSettings is frozen (a run cannot change it half-way) and pickles, so a cluster run sends
it to its Ray workers as it is. The model's fields (model, provider, threads, precision, strength,
scale, outscale, width, height, tile, max_memory) make an Upscaler (``Upscaler.from_settings``);
the files' fields (recursive, suffix, output_format, quality, overwrite, max_pixels) say which
output each input gets and how it is written. A field's rule lives in one place: strength is
parse_strength's, the output size OutputSize's, the precision and threads the model's
(model.resolve_model, open_session), the quality the encoder's (imageio.write_image).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..errors import EnhanceEdgeError
from ..io.imageio import DEFAULT_MAX_PIXELS, DEFAULT_QUALITY
from .output_size import OutputSize
from .settings import DEFAULT_MAX_MEMORY
from .strength import parse_strength


@dataclass(frozen=True)
class UpscaleSettings:
    """What one run upscales with and how it writes its files. ``model`` is a bundled model's name
    or an ONNX file (None: the bundled default); the rest as `enhance-edge upscale --help` says."""

    model: str | Path | None = None
    provider: str = "cpu"
    threads: int | None = None
    precision: str = "auto"
    strength: float | str = "auto"  # "auto" or a number from 0 to 1, as parse_strength leaves it
    scale: int | None = None
    outscale: float | None = None
    width: int | None = None
    height: int | None = None
    tile: int | None = None
    max_memory: int = DEFAULT_MAX_MEMORY
    # The files: which output each input gets, and how it is written.
    recursive: bool = False
    suffix: str | None = None
    output_format: str | None = None
    quality: int = DEFAULT_QUALITY
    overwrite: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        object.__setattr__(self, "strength", parse_strength(self.strength))
        self.output_size  # noqa: B018 - OutputSize checks outscale, width and height
        if self.tile is not None and self.tile < 1:
            raise EnhanceEdgeError(f"tile must be >= 1 pixel, got {self.tile}")
        if self.max_memory < 1:
            raise EnhanceEdgeError(f"max_memory must be > 0 bytes, got {self.max_memory}")

    @property
    def output_size(self) -> OutputSize:
        """The size an upscale returns: outscale, or width and/or height, or the model's own scale."""
        return OutputSize(self.outscale, self.width, self.height)

    def replace(self, **changes) -> UpscaleSettings:
        """A copy with ``changes``, validated as a new one is."""
        return dataclasses.replace(self, **changes)


# The fields that shape the model run: what Upscaler(model, provider, threads, **options) takes.
MODEL_FIELDS = ("model", "provider", "threads", "precision", "strength", "scale", "outscale", "width", "height",
                "tile", "max_memory")
