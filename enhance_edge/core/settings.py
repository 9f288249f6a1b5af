"""The runtime's choices and defaults that the command line declares (and its help shows), in a
module that imports nothing: `enhance-edge --help` and the start of a command load no onnxruntime."""

from typing import Literal, get_args

# "auto": a bundled model's int8 file where it is installed and this CPU sums int8 exactly, else fp32.
Precision = Literal["auto", "int8", "fp32"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
DEFAULT_MAX_MEMORY = 1 << 30  # bytes; a 12-megapixel photo then peaks near 1 GiB
# `upscale --cluster` writes it beside the outputs: every input's status.
CLUSTER_SUMMARY_NAME = "enhance-edge-summary.csv"
