"""The quality bars of export and quantization, in the runtime package (no PyTorch, no onnx) so
that the command line shows them as its defaults on a runtime-only install too; and the
project's goals, which `enhance-edge bench` checks every run against (benchmarks/report.py)."""

PARITY_TOLERANCE = 1e-4  # max abs difference between onnxruntime and PyTorch, values in [0, 1]
MAX_PSNR_LOSS_DB = 0.2  # largest validation PSNR loss (dB) of an int8 model against its fp32 model
# The largest PSNR loss of int8 against fp32 on any one gate image (the mean limit is the loss
# above, on every gate set): a mean over 40 dB faces hid 1-3 dB losses on clean photos (issue 15).
MAX_IMAGE_LOSS_DB = 0.3
# The least share of the validation faces an int8 model must run itself at precision "auto" (which
# reruns in fp32 the images int8 adds too little detail to): below it, "auto" would mostly pay for
# both runs, slower than fp32 alone wherever int8 is not several times faster.
MIN_INT8_SHARE = 0.5

# Goals. Speed: ORT int8 over ORT fp32 and ORT fp32 over PyTorch eager (256x256 and 1024x1024),
# `enhance-edge upscale` int8 over fp32 end to end, and ORT int8's share of the CPU's int8 peak.
INT8_SPEEDUP_GOAL = 2.0
ORT_SPEEDUP_GOAL = 2.0
END_TO_END_SPEEDUP_GOAL = 1.8
INT8_PEAK_SHARE_GOAL = 0.25
# Issue 7's for each extra model: at most the latency of FSRCNN x2 run by OpenCV's DNN module
# (measured in the same run) at this input size (height, width) and thread count, and at least
# this PSNR on the Yale test subjects.
FSRCNN_GOAL_SIZE = (512, 512)
FSRCNN_GOAL_THREADS = 2
PSNR_GOAL_DB = 38.5
# Issue 15's for int8 against its fp32 model on every kind of content: no image losing more than
# MAX_IMAGE_LOSS_DB, and no set (Yale test faces, photos, LFW faces, gradients, high-key,
# low-key) more than this on average.
INT8_SET_LOSS_GOAL_DB = 0.15
