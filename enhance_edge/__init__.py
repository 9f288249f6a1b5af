"""enhance-edge: face super-resolution with onnxruntime alone (no torch at run time)."""

__version__ = "0.1.0"

from .errors import (CheckpointError, DataError, EnhanceEdgeError, ImageError, MissingExtraError,  # noqa: E402
                     ModelError, ParityError, ProviderError)
from .model import ModelInfo  # noqa: E402
from .upscaler import Upscaler  # noqa: E402

__all__ = ["CheckpointError", "DataError", "EnhanceEdgeError", "ImageError", "MissingExtraError",
           "ModelError", "ModelInfo", "ParityError", "ProviderError", "Upscaler", "__version__"]
