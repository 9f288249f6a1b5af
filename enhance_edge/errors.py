"""Typed errors raised by the enhance-edge library.

The CLI turns each of these into one line on stderr; library users can catch the base
class or a specific one.
"""


class EnhanceEdgeError(Exception):
    """Base class of every error enhance-edge raises on purpose."""


class MissingExtraError(EnhanceEdgeError):
    """A feature needs an optional dependency group that is not installed."""

    def __init__(self, feature: str, extra: str, missing: str):
        super().__init__(
            f"{feature} needs the '{extra}' extra ({missing} is not installed): "
            f'pip install "enhance-edge[{extra}]"'
        )
        self.extra = extra


class ModelError(EnhanceEdgeError):
    """A model file is missing, unreadable, or does not follow enhance-edge's I/O contract."""


class ImageError(EnhanceEdgeError):
    """An input image cannot be read or processed."""


class ProviderError(EnhanceEdgeError):
    """The requested onnxruntime execution provider is not available."""


class DataError(EnhanceEdgeError):
    """A training or evaluation data folder is unusable."""


class CheckpointError(EnhanceEdgeError):
    """A training checkpoint is missing, corrupt, or not one of ours."""


class ParityError(EnhanceEdgeError):
    """The exported ONNX model does not reproduce the PyTorch model."""


class DocsError(EnhanceEdgeError):
    """A document's generated tables cannot be rendered: a source file is missing or lacks a score,
    or the document's table markers do not pair up."""
