"""The quality bars an exported or quantized model must pass (export/onnx_export.py, export/quantize.py),
in the runtime package (no PyTorch, no onnx) so that the command line shows them as its defaults on
a runtime-only install too. The project's goals, which `enhance-edge bench` checks every run
against, are in benchmarks/goals.py."""

PARITY_TOLERANCE = 1e-4  # max abs difference between onnxruntime and PyTorch, values in [0, 1]
# The int8 gate of `quantize` (export/gate.py): every gate image's int8 output at least this PSNR (dB)
# against the fp32 model's (an rms difference of 1.4 levels or less, which no one sees) ...
MIN_PSNR_VS_FP32_DB = 45.0
# ... and, against the ground truth, a mean PSNR loss of at most this (dB) on each natural set (faces, photos).
MAX_MEAN_LOSS_DB = 0.1
