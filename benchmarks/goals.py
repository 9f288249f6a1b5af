"""The project's goals, which `enhance-edge bench` checks every run against (benchmarks/report.py).
The quality bars an exported or quantized model must pass are the runtime's
(enhance_edge/core/gates.py): the command line shows them as its defaults."""

# Speed: ORT int8 over ORT fp32 and ORT fp32 over PyTorch eager (256x256 and 1024x1024),
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
# MAX_IMAGE_LOSS_DB (enhance_edge/core/gates.py), and no set (Yale test faces, photos, LFW faces,
# gradients, high-key, low-key) more than this on average.
INT8_SET_LOSS_GOAL_DB = 0.15
