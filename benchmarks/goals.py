"""The project's goals, which `enhance-edge bench` checks every run against (benchmarks/report.py).
The quality bars an exported or quantized model must pass are the runtime's
(enhance_edge/core/gates.py): the command line shows them as its defaults."""

# Speed: ORT int8 over ORT fp32 and ORT fp32 over PyTorch eager (256x256 and 1024x1024; issue 27: int8
# model time at most 0.5x fp32's on a CPU with VNNI), `enhance-edge upscale` int8 over fp32 end to end
# (issue 27: `default` at most 0.65x fp32's on an 896x1024 PNG), and ORT int8's share of the CPU's int8 peak.
INT8_SPEEDUP_GOAL = 2.0
ORT_SPEEDUP_GOAL = 2.0
END_TO_END_SPEEDUP_GOAL = 1 / 0.65
INT8_PEAK_SHARE_GOAL = 0.25
# Issue 7's for each extra model: at most the latency of FSRCNN x2 run by OpenCV's DNN module
# (measured in the same run) at this input size (height, width) and thread count, and at least
# this PSNR on the Yale test subjects.
FSRCNN_GOAL_SIZE = (512, 512)
FSRCNN_GOAL_THREADS = 2
# Issue 26's: the bundled `fast` at most 0.4x FSRCNN's latency there (every other model: 1.0x), and
# the bundled `default` at most 0.25x the model time of the release it replaced, at 1024x1024 and 2
# threads, that release's default.onnx compared in the same run under this label
# (`--compare release-0.1-default.onnx`, a file kept outside the package).
FAST_VS_FSRCNN_SPEEDUP_GOAL = 2.5
PREVIOUS_DEFAULT_LABEL = "release-0.1-default"
PREVIOUS_DEFAULT_SPEEDUP_GOAL = 4.0
PREVIOUS_DEFAULT_GOAL_SIZE = (1024, 1024)
PREVIOUS_DEFAULT_GOAL_THREADS = 2
PSNR_GOAL_DB = 38.5
