"""The quality bars of export and quantization, in the runtime package (no PyTorch, no onnx) so
that the command line shows them as its defaults on a runtime-only install too."""

PARITY_TOLERANCE = 1e-4  # max abs difference between onnxruntime and PyTorch, values in [0, 1]
MAX_PSNR_LOSS_DB = 0.2  # largest validation PSNR loss (dB) of an int8 model against its fp32 model
