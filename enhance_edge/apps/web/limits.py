"""What one request to the web service may send and how many may wait: `serve`'s defaults, in a
module the command line imports at start (no web framework, no onnxruntime)."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import EnhanceEdgeError

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """How much one request may send and how many may wait; they bound the server's memory
    (the Upscaler itself keeps the model run within its memory budget by tiling)."""

    max_upload_bytes: int = 25 * MiB
    max_pixels: int = 16_000_000
    max_waiting: int = 8

    def __post_init__(self):
        for name in ("max_upload_bytes", "max_pixels"):
            if getattr(self, name) < 1:
                raise EnhanceEdgeError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_waiting < 0:
            raise EnhanceEdgeError(f"max_waiting must be >= 0, got {self.max_waiting}")
