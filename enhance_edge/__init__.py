"""enhance-edge: face super-resolution with onnxruntime alone (no torch at run time)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (CheckpointError, DataError, EnhanceEdgeError, ImageError, MissingExtraError, ModelError,
                     ParityError, ProviderError)

__version__ = "0.1.0"

# The public names that need onnxruntime (or numpy and Pillow), imported on first use: the command
# line imports this package, and its help and its start load no model runtime.
_LAZY = {"FileResult": "core.batch", "Outcome": "core.batch", "ModelInfo": "core.model", "Upscaler": "core.upscaler",
         "UpscaleSettings": "core.upscale_settings",
         # The reader of `enhance-edge upscale`: upright (EXIF orientation applied), in a working mode, with
         # what an output inherits (format, ICC profile, DPI, EXIF) as a SourceInfo; bombs refused.
         "SourceInfo": "io.imageio", "read_image": "io.imageio"}

if TYPE_CHECKING:
    from .core.batch import FileResult, Outcome
    from .core.model import ModelInfo
    from .core.upscale_settings import UpscaleSettings
    from .core.upscaler import Upscaler
    from .io.imageio import SourceInfo, read_image


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["CheckpointError", "DataError", "EnhanceEdgeError", "FileResult", "ImageError", "MissingExtraError",
           "ModelError", "ModelInfo", "Outcome", "ParityError", "ProviderError", "SourceInfo", "UpscaleSettings",
           "Upscaler", "__version__", "read_image"]
