"""The machine and what it can do: CPU, library versions, measured matrix-product peaks, the model's
arithmetic, and which kernels onnxruntime actually ran (operators from its profiler, instructions
from ``perf`` samples where perf is installed)."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from importlib import metadata as package_metadata
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from enhance_edge.core.model import (INPUT_NAME, PAIR_SUM_EXACT_WEIGHT_BITS, STRENGTH_NAME, ModelInfo,
                                     int8_instructions, int8_pair_sums, open_session)

from ..export.timing import measure

# CPU features that decide which int8 and fp32 kernels onnxruntime's MLAS dispatches to.
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
                "amx_tile", "amx_int8", "amx_bf16", "asimddp", "i8mm", "sve")
PACKAGES = ("onnxruntime", "torch", "opencv-contrib-python-headless", "opencv-python-headless", "numpy", "Pillow")
# Instruction families read off the hottest onnxruntime instructions.
INSTRUCTION_FAMILIES = (("int8 dot product (VNNI)", re.compile(r"^vpdpbus")),
                        ("int8 tiles (AMX)", re.compile(r"^tdpb")),
                        ("int8 multiply-add, 16-bit intermediate (pre-VNNI)", re.compile(r"^vpmaddubsw")),
                        ("fp32 fused multiply-add", re.compile(r"^vfn?madd")))


def cpu_info() -> dict:
    """CPU model, core count, the kernel-relevant feature flags (Linux /proc/cpuinfo), the int8
    instructions with which `--precision auto` runs int8 here (model.int8_instructions), and whether
    without them it runs int8 files of 7-bit weights (model.int8_pair_sums: AVX2); else fp32."""
    int8, pair_sums = int8_instructions(), int8_pair_sums()
    auto = "int8" if int8 else f"int8 for {PAIR_SUM_EXACT_WEIGHT_BITS}-bit weights, else fp32" if pair_sums else "fp32"
    info = {"machine": platform.machine(), "logical_cpus": os.cpu_count(), "model": platform.processor() or None,
            "flags": None, "int8_instructions": int8, "int8_pair_sums": pair_sums, "auto_precision": auto}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    fields = dict(re.findall(r"^(model name|cpu family|model|flags|Features)\s*:\s*(.*)$", text, re.M)[::-1])
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    info.update(model=fields.get("model name", info["model"]), family=fields.get("cpu family"),
                model_number=fields.get("model"), flags=[f for f in KERNEL_FLAGS if f in flags])
    return info


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            continue
    return found


def _matmul_model(op: str, n: int, a_type: int, b: np.ndarray, out_type: int) -> bytes:
    graph = helper.make_graph(
        [helper.make_node(op, ["a", "b"], ["c"])], op,
        [helper.make_tensor_value_info("a", a_type, [n, n])], [helper.make_tensor_value_info("c", out_type, [n, n])],
        [numpy_helper.from_array(b, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def matmul_peaks(threads: int, n: int = 2048, min_time_s: float = 1.0) -> dict:
    """This machine's measured peaks through onnxruntime's own kernels: an n x n x n fp32 MatMul
    (GFLOP/s) and a uint8 x int8 MatMulInteger (GOP/s, 2 ops per multiply-add), constant B so that
    both use pre-packed weights, as convolutions do."""
    rng = np.random.default_rng(0)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    results = {"n": n, "threads": threads}
    cases = (("fp32_gflops", "MatMul", TensorProto.FLOAT, rng.random((n, n), dtype=np.float32),
              rng.random((n, n), dtype=np.float32), TensorProto.FLOAT),
             ("int8_gops", "MatMulInteger", TensorProto.UINT8, rng.integers(-128, 128, (n, n), dtype=np.int8),
              rng.integers(0, 256, (n, n), dtype=np.uint8), TensorProto.INT32))
    for key, op, a_type, b, a, out_type in cases:
        session = ort.InferenceSession(_matmul_model(op, n, a_type, b, out_type), options,
                                       providers=["CPUExecutionProvider"])
        timing = measure(lambda: session.run(None, {"a": a}), warmup=1, min_reps=5, min_time_s=min_time_s)
        # A peak is the fastest repetition: another process can only slow a product down, and a
        # disturbed median once put the 2-thread fp32 peak below what the model itself reached.
        results[key] = 2 * n**3 / timing.best_s / 1e9
    return results


def conv_macs_per_pixel(path: Path) -> int:
    """Multiply-adds per input pixel, counted from the ONNX graph's convolutions (every one of this
    model family runs at the input's resolution: stride 1, 'same' size). Elementwise ops are left
    out; they are a few per pixel against ~10^5. Works on fp32 and on int8 QDQ models (whose
    convolutions take their weights through a DequantizeLinear of the int8 initializer)."""
    model = onnx.load(str(path))
    shapes = {t.name: t.dims for t in model.graph.initializer}
    shapes.update({node.output[0]: attribute.t.dims for node in model.graph.node if node.op_type == "Constant"
                   for attribute in node.attribute if attribute.name == "value"})
    shapes.update({node.output[0]: shapes[node.input[0]] for node in model.graph.node
                   if node.op_type == "DequantizeLinear" and node.input[0] in shapes})
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            out_channels, in_per_group, *kernel = shapes[node.input[1]]
            total += out_channels * in_per_group * int(np.prod(kernel))
    return total


def operator_profile(path: Path, size: tuple[int, int], threads: int, runs: int = 3) -> list[dict]:
    """Share of kernel time per operator (and its input element type) from onnxruntime's profiler."""
    with tempfile.TemporaryDirectory(prefix="enhance-edge-profile-") as tmp:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session, info = open_session(path, "cpu", threads, options)
        feeds = profile_feeds(info, size)
        for _ in range(runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    durations: Counter = Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            args = event["args"]
            dtype = next(iter(args["input_type_shape"][0]), "?") if args.get("input_type_shape") else "?"
            durations[(args["op_name"], dtype)] += event["dur"]
    total = sum(durations.values()) or 1
    return [{"op": op, "input_type": dtype, "share": us / total} for (op, dtype), us in durations.most_common()]


def profile_feeds(info: ModelInfo, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """A random plane of ``size`` and, for a model conditioned on the degradation level, a mid
    strength (its kernels are the same at any)."""
    feeds = {INPUT_NAME: np.random.default_rng(0).random((1, 1, *size), dtype=np.float32)}
    if info.conditioned:
        feeds[STRENGTH_NAME] = np.array([0.5], np.float32)
    return feeds


_PROFILED_RUN = """
import sys
from enhance_edge.benchmarks.machine import profile_feeds
from enhance_edge.core.model import open_session
session, info = open_session(sys.argv[1], "cpu", 1)
feeds = profile_feeds(info, (int(sys.argv[2]), int(sys.argv[3])))
for _ in range(int(sys.argv[4])):
    session.run(None, feeds)
"""


def hot_instructions(path: Path, size: tuple[int, int], runs: int = 10, top: int = 40) -> dict:
    """Which instructions onnxruntime spends its time in, from ``perf record`` samples.

    onnxruntime ships stripped, so there are no kernel names to read; the hottest sampled
    addresses are disassembled instead. A timer sample lands on or next to the instruction that
    was running, so the shares are approximate, but a loop of ``vpdpbusds zmm`` can only be the
    AVX-512 VNNI int8 kernel, and ``tdpbusd`` only AMX.
    """
    perf, objdump = shutil.which("perf"), shutil.which("objdump")
    if not perf or not objdump:
        return {"skipped": "needs perf and objdump (apt-get install linux-perf binutils)"}
    with tempfile.TemporaryDirectory(prefix="enhance-edge-perf-") as tmp:
        data = Path(tmp) / "perf.data"
        record = subprocess.run([perf, "record", "-q", "-e", "cpu-clock", "-F", "2000", "-o", str(data), "--",
                                 sys.executable, "-c", _PROFILED_RUN, str(path), str(size[0]), str(size[1]),
                                 str(runs)], capture_output=True, text=True)
        if record.returncode:
            return {"skipped": f"perf record failed: {(record.stderr.strip().splitlines() or ['?'])[-1]}"}
        report = subprocess.run([perf, "report", "-i", str(data), "--stdio", "--sort", "dso,sym",
                                 "--percent-limit", "0.2"], capture_output=True, text=True).stdout
    library_dir = Path(ort.__file__).parent / "capi"
    rows = re.findall(r"^\s*([\d.]+)%\s+(\S*onnxruntime\S*)\s+\[\.\]\s+0x([0-9a-f]+)\s*$", report, re.M)
    families: Counter = Counter()
    mnemonics: Counter = Counter()
    for share, dso, address in rows[:top]:
        line = subprocess.run([objdump, "-d", "--no-show-raw-insn", f"--start-address=0x{address}",
                               f"--stop-address=0x{int(address, 16) + 16:x}", str(library_dir / dso)],
                              capture_output=True, text=True).stdout
        found = re.search(rf"^\s*{int(address, 16):x}:\s+(\S+)\s*(.*)$", line, re.M)
        if not found:
            continue
        mnemonic, operands = found.groups()
        width = next((reg for reg in ("zmm", "ymm", "xmm", "tmm") if reg in operands), "")
        mnemonics[f"{mnemonic} {width}".strip()] += float(share)
        for family, pattern in INSTRUCTION_FAMILIES:
            if pattern.match(mnemonic):
                families[family] += float(share)
    hottest_window: Counter = Counter()
    if rows:  # the code around the hottest address: the inner loop of the kernel that dominates
        _, dso, address = rows[0]
        window = subprocess.run([objdump, "-d", "--no-show-raw-insn", f"--start-address=0x{int(address, 16) - 64:x}",
                                 f"--stop-address=0x{int(address, 16) + 64:x}", str(library_dir / dso)],
                                capture_output=True, text=True).stdout
        hottest_window.update(re.findall(r"^\s*[0-9a-f]+:\s+(\S+)", window, re.M))
    return {"top_addresses": min(top, len(rows)), "sampled_share_percent": sum(mnemonics.values()),
            "instructions": [{"instruction": m, "share_percent": s} for m, s in mnemonics.most_common(8)],
            "families": {family: share for family, share in families.most_common()},
            "hottest_window": dict(hottest_window.most_common(6))}
