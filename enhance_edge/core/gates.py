"""The quality bars an exported or quantized model must pass (export/onnx_export.py, export/quantize.py),
in the runtime package (no PyTorch, no onnx) so that the command line shows them as its defaults on
a runtime-only install too. The project's goals, which `enhance-edge bench` checks every run
against, are in benchmarks/goals.py."""

PARITY_TOLERANCE = 1e-4  # max abs difference between onnxruntime and PyTorch, values in [0, 1]
MAX_PSNR_LOSS_DB = 0.2  # largest validation PSNR loss (dB) of an int8 model against its fp32 model
# The largest PSNR loss of int8 against fp32 on any one gate image (the mean limit is the loss
# above, on every gate set): a mean over 40 dB faces hid 1-3 dB losses on clean photos (issue 15).
MAX_IMAGE_LOSS_DB = 0.3
# The least share of the validation faces an int8 model must run itself at precision "auto" (which
# reruns in fp32 the images int8 adds too little detail to): below it, "auto" would mostly pay for
# both runs, slower than fp32 alone wherever int8 is not several times faster.
MIN_INT8_SHARE = 0.5
