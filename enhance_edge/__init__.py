"""enhance-edge: face super-resolution with onnxruntime alone (no torch at run time)."""

__version__ = "0.1.0"

from .batch import FileResult, Outcome  # noqa: E402
from .errors import (CheckpointError, DataError, EnhanceEdgeError, ImageError, MissingExtraError,  # noqa: E402
                     ModelError, ParityError, ProviderError)
# The reader of `enhance-edge upscale`: upright (EXIF orientation applied), in a working mode, with
# what an output inherits (format, ICC profile, DPI, EXIF) as a SourceInfo; bombs refused.
from .imageio import SourceInfo, read_image  # noqa: E402
from .model import ModelInfo  # noqa: E402
from .upscaler import Upscaler  # noqa: E402

__all__ = ["CheckpointError", "DataError", "EnhanceEdgeError", "FileResult", "ImageError", "MissingExtraError",
           "ModelError", "ModelInfo", "Outcome", "ParityError", "ProviderError", "SourceInfo", "Upscaler",
           "__version__", "read_image"]
