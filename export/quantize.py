"""fp32 enhance-edge ONNX model -> int8 QDQ model (onnxruntime static quantization), quality-checked.

The pipeline: onnxruntime's quantization pre-processing (symbolic shape inference and graph
clean-up), calibration on the validation faces of a face folder (docs/evaluation.md's split: yaleB29..33
for the Yale faces) fed through the runtime's own pre-processing, QDQ quantization with
per-channel weights, then the gate (gate.py): on every gate image the int8 output stays within
``min_psnr_vs_fp32_db`` PSNR of the fp32 model's output, and on the natural sets (faces, photos) int8
loses at most ``max_loss_db`` of fp32's PSNR against the ground truth on average, or nothing is
written. Both are computed with exact int8 arithmetic (the QDQ model run in float), the same on
every machine.

Several recipes (calibration method, activation and weight types, SiLU in int8 or in float, the
image-space output layers in int8 or in float) can be tried. Each is scored on validation PSNR and
on latency, the graph onnxruntime actually runs is inspected for compute left in float, and the
comparison is stored in the int8 model's metadata beside the recipe that was kept. Test-split
scores are reported for the kept recipe only, never used to choose.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)

from enhance_edge.eval.dataset import PairSet, load_pairs, trained_hr_size, trained_seed
from enhance_edge.eval.degradation import DegradationConfig
from enhance_edge.errors import ModelError, ParityError
from enhance_edge.core.model import (INPUT_NAME, INT8_WEIGHT_BITS_KEY, STRENGTH_NAME, STRENGTH_USED_NAME, ModelInfo,
                                     open_session)
from enhance_edge.core.processing import from_unit_float, to_batch, to_unit_float
from enhance_edge.eval.protocol import psnr, score

from ..train.config import INT8_WEIGHT_BITS
from .calibration_mix import NATURAL_GATE_SETS, calibration_mix, gate_images, lr_of
from .gate import (IDENTICAL_PSNR_DB, MAX_MEAN_LOSS_DB, MIN_PSNR_VS_FP32_DB, GateRow, GateTable, as_json,
                   describe_table, gate_failures)
from .onnx_export import write_model_file
from .timing import measure

CALIBRATION_METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                       "percentile": CalibrationMethod.Percentile}
ACTIVATION_TYPES = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8, "uint16": QuantType.QUInt16}
WEIGHT_TYPES = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
EIGHT_BIT = ("uint8", "int8")  # activation types a kept recipe may use
PRECISION_CHOICES = ("int8", "float")
# "faces": the face folder's validation split alone; "mix": plus natural images, gradients,
# high-key, low-key and text (calibration_mix.py): Yale alone left other content's ranges unseen.
CALIBRATION_SETS = ("faces", "mix")
# SiLU exports as Sigmoid + Mul; silu="float" leaves both out of quantization.
SILU_OPS = ("Sigmoid", "Mul")
# What a SiLU left in float becomes: onnxruntime's fused x * sigmoid(alpha * x) kernel. It fuses
# Sigmoid + Mul itself in fp32 graphs, but not behind a QDQ graph's DequantizeLinear (its
# optimized graph keeps them apart, each behind its own DequantizeLinear). Fused by hand the
# outputs are bit-identical and the shipped default-int8 ran 12% (256x256, 1 thread) to 22%
# (256x256 and 1024x1024, 2 threads) faster. The op is in every onnxruntime build (contrib ops),
# not in standard ONNX: OpenCV DNN cannot run such a file.
FUSED_SILU = ("com.microsoft", "QuickGelu")
# Recipes within SPEED_TIE of the fastest passing one count as equally fast, and among them those
# within PSNR_TIE_DB of the best validation PSNR as equally accurate: the fastest of these is kept
# (else fast's int8 file of 2026-12-05 kept one more float convolution, 9.1 against 8.6 ms at
# 256x256, for 0.004 dB).
SPEED_TIE = 1.10
PSNR_TIE_DB = 0.01
CALIBRATION_BATCH = 16
EVAL_BATCH = 64
TIMING_SIZE = (256, 256)  # (height, width) of the input each recipe is timed on


def weight_bits_fit(weights: str, weight_bits: int) -> bool:
    """Whether int8 weights of ``weight_bits`` go with weights of type ``weights``: 8 with any, 7 with
    int8 only (the AVX2 kernels' 16-bit pair sums it keeps exact are uint8 x int8)."""
    return weight_bits in INT8_WEIGHT_BITS and (weight_bits == 8 or weights == "int8")


def output_depth_fits(output: str, output_convs: int) -> bool:
    """Whether output layers in ``output`` precision can reach back ``output_convs`` convolutions:
    any depth of at least 1 in float, only the last convolution's own in int8."""
    return output_convs == 1 or (output == "float" and output_convs > 1)


@dataclass(frozen=True)
class Recipe:
    """One way of quantizing: calibration method, activation/weight types, and where SiLU runs."""

    calibration: str = "minmax"
    activations: str = "uint8"  # with int8 weights: the u8 x s8 kernels of x86 VNNI/AMX and ARM
    weights: str = "int8"
    silu: str = "int8"
    # The output layers: the last convolution on every path to the output and what follows it
    # (here the tail conv, the bicubic skip conv, their sum, the pixel shuffle). Under 1% of the
    # multiply-adds, but their rounding lands straight in the output pixels; "float" keeps them exact.
    output: str = "float"
    calibration_set: str = "faces"
    # The residual blocks' Adds: "float" keeps the skip path between blocks unquantized (the convs
    # still take 8-bit inputs); elementwise, so it costs little time.
    residual: str = "int8"
    # How many convolutions, counted back from the output along each path, the output layers
    # reach. 2 adds the body's last convolution: its rounding is the largest single share left
    # in a deep network's output (a 32x9 default failed the text gate image by 0.02 dB with 1,
    # passed with 2), at the cost of one conv's multiply-adds in float.
    output_convs: int = 1
    # The int8 weights' bits: 8 (-127..127), or 7 (-64..64, onnxruntime's reduce_range), with which
    # x86 CPUs without VNNI (AVX2), whose kernels sum each pair of uint8 x int8 products into saturating
    # 16 bits, compute the file exactly (255 * 64 * 2 < 2**15): `--precision auto` then runs it there
    # too. Best after `train --qat --qat-weight-bits 7`, whose float weights the 7-bit grid then holds.
    weight_bits: int = 8

    def __post_init__(self):
        for name, choices in (("calibration", CALIBRATION_METHODS), ("activations", ACTIVATION_TYPES),
                              ("weights", WEIGHT_TYPES), ("silu", PRECISION_CHOICES), ("output", PRECISION_CHOICES),
                              ("calibration_set", CALIBRATION_SETS), ("residual", PRECISION_CHOICES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"Recipe.{name} must be one of {sorted(choices)}, got {getattr(self, name)!r}")
        if not weight_bits_fit(self.weights, self.weight_bits):
            raise ValueError(f"Recipe.weight_bits must be one of {list(INT8_WEIGHT_BITS)} (7 with weights='int8'); got "
                             f"{self.weight_bits!r} with weights={self.weights!r}")
        if not output_depth_fits(self.output, self.output_convs):
            raise ValueError(f"Recipe.output_convs counts the convolutions output='float' keeps: at least 1, and "
                             f"1 with output='int8'; got {self.output_convs!r} with output={self.output!r}")

    @property
    def name(self) -> str:
        extra = "".join(f" {key}:{value}" for key, value, default in (("cal", self.calibration_set, "faces"),
                                                                       ("res", self.residual, "int8"),
                                                                       ("outconvs", self.output_convs, 1),
                                                                       ("wbits", self.weight_bits, 8))
                        if value != default)
        return f"{self.calibration} a:{self.activations} w:{self.weights} silu:{self.silu} out:{self.output}{extra}"

    to_dict = asdict


def search_space(calibrations: Iterable[str] = tuple(CALIBRATION_METHODS),
                 activations: Iterable[str] = tuple(ACTIVATION_TYPES),
                 weights: Iterable[str] = tuple(WEIGHT_TYPES),
                 silu: Iterable[str] = ("int8",), output: Iterable[str] = ("float",),
                 calibration_sets: Iterable[str] = ("faces",), residual: Iterable[str] = ("int8",),
                 output_convs: Iterable[int] = (1,), weight_bits: Iterable[int] = (8,)) -> list[Recipe]:
    """Every combination of the given choices (output_convs only with output layers in float, 7-bit
    weights only with int8 ones)."""
    return [Recipe(cal, act, wt, sil, out, cal_set, res, depth, bits)
            for cal, act, wt, sil, out, cal_set, res, depth, bits in itertools.product(
                calibrations, activations, weights, silu, output, calibration_sets, residual, output_convs,
                weight_bits)
            if output_depth_fits(out, depth) and weight_bits_fit(wt, bits)]


def default_search() -> list[Recipe]:
    """Every calibration method and activation/weight type onnxruntime offers for CPU (SiLU in int8,
    image-space layers in float); SiLU in float with every calibration method (uint8 x int8: the
    `default` model passes only as percentile with SiLU in float); and image-space layers in int8
    on the default recipe: the two places where float may be kept, each measured against
    quantizing it."""
    silu_float = search_space(activations=["uint8"], weights=["int8"], silu=["float"])
    return (search_space() + silu_float + [Recipe(output="int8"), Recipe(silu="float", output="int8")]
            + robust_search())


def robust_search() -> list[Recipe]:
    """The recipes meant to hold on every kind of content (MODEL_CARD.md, "int8: where the loss comes
    from"): calibrated on the mix, SiLU and output layers in float, residual adds in int8 or float,
    the output layers reaching back one or two convolutions, every calibration method (uint8 x int8:
    the kernels of x86 VNNI/AMX and ARM)."""
    return search_space(activations=["uint8"], weights=["int8"], silu=["float"], calibration_sets=["mix"],
                        residual=["int8", "float"], output_convs=[1, 2])


def model_feeds(lr_faces: np.ndarray) -> dict[str, np.ndarray]:
    """A model's inputs for same-sized 8-bit LR faces, made as the runtime makes them. A conditioned
    model reads each face's strength itself when none is fed (the graph's estimator), as "auto" runs it."""
    return {INPUT_NAME: to_batch([to_unit_float(face) for face in lr_faces])}


def estimated_levels(info: ModelInfo, lr_faces: np.ndarray) -> np.ndarray | None:
    """What a conditioned model's estimator reads from each LR face (the strength the runtime's
    "auto" runs it at): its strength_used output; None for a model without the strength input."""
    if not info.conditioned:
        return None
    session, _ = open_session(info.path, "cpu")
    return np.concatenate([session.run([STRENGTH_USED_NAME], model_feeds(lr_faces[i:i + EVAL_BATCH]))[0]
                           for i in range(0, len(lr_faces), EVAL_BATCH)]).reshape(-1)


class FaceCalibrationReader(CalibrationDataReader):
    """Batches of low-resolution faces, made exactly as the runtime makes its model input."""

    def __init__(self, lr_faces: np.ndarray, batch_size: int = CALIBRATION_BATCH, extra: Iterable[np.ndarray] = ()):
        """``extra``: more groups of LR images, each of one size (the calibration mix)."""
        if not len(lr_faces):
            raise ModelError("no calibration faces: the face folder's validation split is empty")
        self.batches = [model_feeds(lr[i:i + batch_size]) for lr in [lr_faces, *extra]
                        for i in range(0, len(lr), batch_size)]
        self.set_range(0, len(self.batches))

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        # onnxruntime calls this to calibrate in chunks, bounding the memory of the
        # intermediate tensors it keeps (every activation of every calibration image).
        self._pending = iter(self.batches[start_index:end_index])

    def get_next(self) -> dict | None:
        return next(self._pending, None)


def float_compute_ops(model: onnx.ModelProto) -> Counter:
    """Nodes that compute on float tensors, by op type, ignoring QuantizeLinear/DequantizeLinear.

    Element types are propagated through the (topologically sorted) graph: QuantizeLinear and
    QLinear* produce integers, DequantizeLinear produces floats, other ops keep the type of their
    first input. For an int8 model this lists what runs outside int8 kernels.
    """
    is_float = {i.name: i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for i in model.graph.input}
    is_float.update({t.name: t.data_type == onnx.TensorProto.FLOAT for t in model.graph.initializer})
    found: Counter = Counter()
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear":
            produces_float = True
        elif node.op_type == "QuantizeLinear" or node.op_type.startswith("QLinear"):
            produces_float = False
        else:
            produces_float = bool(node.input) and is_float.get(node.input[0], False)
            if produces_float:
                found[node.op_type] += 1
        is_float.update({name: produces_float for name in node.output})
    return found


def runtime_graph(model_path: str | Path, threads: int | None = None) -> onnx.ModelProto:
    """The graph onnxruntime runs after its own optimizations (fusions, QDQ -> QLinear*, layout)."""
    with tempfile.TemporaryDirectory(prefix="enhance-edge-graph-") as tmp:
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        options.log_severity_level = 3  # the "hardware specific optimizations" warning is expected here
        open_session(model_path, "cpu", threads, options)  # with the optimizers the model turns off
        return onnx.load(options.optimized_model_filepath)


def model_outputs(session: ort.InferenceSession, lr_faces: np.ndarray) -> np.ndarray:
    """The model's float (N, sH, sW) outputs, not clipped, for same-sized 8-bit LR faces (a conditioned
    model at the strength it reads from each)."""
    return np.concatenate([
        session.run(None, model_feeds(lr_faces[start:start + EVAL_BATCH]))[0][:, 0]
        for start in range(0, len(lr_faces), EVAL_BATCH)])


def upscale_faces(session: ort.InferenceSession, lr_faces: np.ndarray) -> list[np.ndarray]:
    """8-bit outputs for 8-bit LR faces, rounded and clipped as a user would save them."""
    return list(from_unit_float(model_outputs(session, lr_faces)))


def scoring_session(model_path: Path, threads: int | None = None) -> ort.InferenceSession:
    """A session that computes what exact int8 arithmetic computes, on every machine: onnxruntime's
    basic optimization level leaves the QuantizeLinear/DequantizeLinear pairs unfused, so the int8
    model's roundings are computed in float (no kernel of any CPU: x86 without VNNI/AMX sums pairs of
    u8 x s8 products into saturating 16 bits, and high-key images lost 9 dB there). An fp32 model
    computes the same at any level."""
    options = ort.SessionOptions()
    options.enable_mem_pattern = False
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return open_session(model_path, "cpu", threads, options)[0]


GateSets = dict[str, tuple[list[str], np.ndarray, np.ndarray]]  # name: (names, HR, LR)
VALIDATION_SET = "validation faces"  # the gate's first set: faces of people training never saw
DEGRADED_SUFFIX = " (degraded)"  # of a degraded copy's name (with_degraded)


def gate_sets(info: ModelInfo, validation: PairSet, faces_name: str = VALIDATION_SET) -> GateSets:
    """The images the gate scores one by one: the validation faces (as ``faces_name``), then images
    calibration never sees (calibration_mix.gate_images), made to the validation faces' size."""
    sets = {faces_name: (list(validation.names), validation.hr, validation.lr)}
    for name, hrs in gate_images(validation.hr.shape[1:3], info.scale).items():
        sets[name] = image_set(info, [f"{name} #{index}" for index in range(len(hrs))], hrs)
    return sets


def image_set(info: ModelInfo, names: list[str], hrs: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, HR, LR) of same-sized HR images, their LR made as docs/evaluation.md makes it; for a
    conditioned model also a degraded copy of each (with_degraded), as its robust half runs on such."""
    pairs = with_degraded(PairSet(names, hrs, lr_of(hrs, info.scale)), info)
    return list(pairs.names), pairs.hr, pairs.lr


def set_outputs(session: ort.InferenceSession, sets: GateSets) -> dict[str, np.ndarray]:
    """Every image's 8-bit output (N, sH, sW), per set, rounded and clipped as a user saves it."""
    return {name: from_unit_float(model_outputs(session, lrs)) for name, (_, _, lrs) in sets.items()}


def gate_table(fp32: dict[str, np.ndarray], int8: dict[str, np.ndarray], gates: GateSets,
               natural: Iterable[str] = (VALIDATION_SET, *NATURAL_GATE_SETS)) -> GateTable:
    """Per set, from both models' 8-bit outputs (set_outputs): int8 against fp32's output and both
    against the ground truth (gate_row); the sets named in ``natural`` (faces, photos) marked as such."""
    natural = set(natural)
    return {name: gate_row(names, hrs, fp32[name], int8[name], name in natural)
            for name, (names, hrs, _) in gates.items()}


def gate_row(names: list[str], hrs: np.ndarray, fp32: np.ndarray, int8: np.ndarray, natural: bool) -> GateRow:
    """One set's row of a gate table: against fp32's output, the set's PSNR (of its mean squared
    difference) and its lowest image's; against the ground truth, fp32's mean PSNR and int8's mean and
    worst loss. Identical outputs count as IDENTICAL_PSNR_DB."""
    difference = np.array([np.mean((a.astype(np.float64) - b) ** 2) for a, b in zip(int8, fp32)])
    vs_fp32 = psnr_of_mse(difference)
    fp32_psnr = np.array([psnr(hr, out) for hr, out in zip(hrs, fp32)])
    loss = fp32_psnr - np.array([psnr(hr, out) for hr, out in zip(hrs, int8)])
    return GateRow(len(loss), float(fp32_psnr.mean()), float(loss.mean()), float(loss.max()),
                   names[int(loss.argmax())], float(psnr_of_mse(difference.mean())), float(vs_fp32.min()),
                   names[int(vs_fp32.argmin())], natural)


def psnr_of_mse(mse: np.ndarray | float) -> np.ndarray:
    """PSNR (dB, 8-bit peak) of mean squared differences; 0 is IDENTICAL_PSNR_DB."""
    mse = np.asarray(mse, np.float64)
    with np.errstate(divide="ignore"):
        return np.minimum(10 * np.log10(255.0**2 / mse), IDENTICAL_PSNR_DB)


def assess(model_path: Path, pairs: PairSet, threads: int | None, timing_input: dict[str, np.ndarray],
           sets: GateSets | None = None) -> dict:
    """Validation quality (and every image's 8-bit output in ``sets``, under "outputs"), computed as
    exact int8 arithmetic computes it, latency on ``timing_input`` with this CPU's kernels, and float
    compute left in the runtime graph."""
    session = scoring_session(model_path, threads)
    quality = score(list(pairs.hr), upscale_faces(session, pairs.lr))
    if sets is not None:
        quality["outputs"] = set_outputs(session, sets)
    timed, _ = open_session(model_path, "cpu", threads)
    timing = measure(lambda: timed.run(None, timing_input), warmup=1, min_reps=3, min_time_s=0.5)
    return {**quality, "latency_s": timing.median_s,
            "float_ops": dict(float_compute_ops(runtime_graph(model_path, threads)))}


def output_layers(model: onnx.ModelProto, convs: int = 1) -> list[str]:
    """The last ``convs`` convolutions on every path to the graph output, and every node after them."""
    producers = {name: node for node in model.graph.node for name in node.output}
    passed_at: dict[str, int] = {}  # node -> fewest convolutions passed on a path from the output to it
    pending = [(output.name, 0) for output in model.graph.output]
    while pending:
        tensor, passed = pending.pop()
        node = producers.get(tensor)
        if node is None or passed_at.get(node.name, convs) <= passed:
            continue
        passed_at[node.name] = passed
        passed += node.op_type == "Conv"
        if passed < convs:
            pending += [(name, passed) for name in node.input]
    return list(passed_at)


def quantize_with(recipe: Recipe, prepared: Path, out_path: Path, lr_faces: np.ndarray, cache: Path,
                  mix: Iterable[np.ndarray] = ()) -> None:
    """Quantize the pre-processed model with one recipe. ``cache`` holds calibration ranges for
    recipes that quantize the same nodes on the same images (others need other tensors calibrated).
    ``mix``: the groups of LR images a "mix" recipe calibrates on beside the faces."""
    model = onnx.load(prepared)
    ops = sorted({n.op_type for n in model.graph.node} - set(SILU_OPS)) if recipe.silu == "float" else None
    excluded = output_layers(model, recipe.output_convs) if recipe.output == "float" else []
    if recipe.residual == "float":
        excluded += [n.name for n in model.graph.node if n.op_type == "Add" and n.name not in excluded]
    if recipe.calibration_set == "mix" and not mix:
        raise ValueError("a recipe calibrated on the mix needs its images (mix=...)")
    reader = FaceCalibrationReader(lr_faces, extra=mix if recipe.calibration_set == "mix" else ())
    with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print per batch
        quantize_static(
            prepared, out_path, reader, quant_format=QuantFormat.QDQ,
            per_channel=True, activation_type=ACTIVATION_TYPES[recipe.activations],
            weight_type=WEIGHT_TYPES[recipe.weights], reduce_range=recipe.weight_bits == 7,
            calibrate_method=CALIBRATION_METHODS[recipe.calibration],
            op_types_to_quantize=ops, nodes_to_exclude=excluded or None, calibration_cache_path=cache,
            # One batch per calibration pass: memory stays bounded whatever the number of faces.
            extra_options={"CalibStridedMinMax": 1})
    if recipe.silu == "float":
        quantized = onnx.load(out_path)
        if fuse_float_silu(quantized):
            onnx.save(quantized, out_path)


def fuse_float_silu(model: onnx.ModelProto) -> int:
    """Replace every float Mul(x, Sigmoid(x)) by one QuickGelu(x, alpha=1); returns how many."""
    nodes = list(model.graph.node)
    sigmoid_at = {node.output[0]: index for index, node in enumerate(nodes) if node.op_type == "Sigmoid"}
    consumers = Counter(name for node in nodes for name in node.input)
    fused, dropped = {}, set()
    for index, node in enumerate(nodes):
        if node.op_type != "Mul":
            continue
        for x, gate in (node.input, node.input[::-1]):
            if gate in sigmoid_at and nodes[sigmoid_at[gate]].input[0] == x and consumers[gate] == 1:
                fused[index] = onnx.helper.make_node(FUSED_SILU[1], [x], list(node.output), name=node.name,
                                                     domain=FUSED_SILU[0], alpha=1.0)
                dropped.add(sigmoid_at[gate])
                break
    if fused:
        del model.graph.node[:]
        model.graph.node.extend(fused.get(index, node) for index, node in enumerate(nodes) if index not in dropped)
        if not any(opset.domain == FUSED_SILU[0] for opset in model.opset_import):
            model.opset_import.append(onnx.helper.make_opsetid(FUSED_SILU[0], 1))
    return len(fused)


def choose(candidates: list[dict], fp32_psnr: float, max_loss_db: float = MAX_MEAN_LOSS_DB,
           min_psnr_vs_fp32_db: float = MIN_PSNR_VS_FP32_DB) -> dict:
    """Among 8-bit recipes that pass their gate (a candidate's "gate" table: every image within
    ``min_psnr_vs_fp32_db`` of fp32's output, every natural set's mean loss within ``max_loss_db``;
    without a gate, a validation loss within ``max_loss_db``), those within SPEED_TIE of the fastest
    kernels, then the best validation PSNR, or the fastest of those within PSNR_TIE_DB of it. 16-bit
    activations are measured for reference only: onnxruntime's CPU provider has no 16-bit convolution
    kernels, so they run in float between Q/DQ pairs."""
    eight_bit = [c for c in candidates if c["recipe"]["activations"] in EIGHT_BIT]
    scored = [c for c in eight_bit if "error" not in c]

    def failures(c):
        if "gate" not in c:
            return [f"validation loses {fp32_psnr - c['psnr']:.3f} dB"] if fp32_psnr - c["psnr"] > max_loss_db else []
        return gate_failures(c["gate"], min_psnr_vs_fp32_db, max_loss_db)

    passing = [c for c in scored if not failures(c)]
    if not passing:
        # the best: the highest lowest-PSNR against fp32 where there are gates, else the best validation PSNR
        best = max(scored, key=lambda c: (min((r.vs_fp32_min_psnr for r in c.get("gate", {}).values()), default=0),
                                          c["psnr"]), default=None)
        if best:
            detail = f"the best, {best['name']}: " + "; ".join(failures(best))
        elif eight_bit:
            detail = "every 8-bit recipe failed: " + "; ".join(f"{c['name']}: {c['error']}" for c in eight_bit)
        else:
            detail = "none was tried"
        if len(eight_bit) < len(candidates):
            detail += "; 16-bit recipes are measured for reference only"
        raise ParityError(f"no 8-bit recipe passes the gate (every gate image within {min_psnr_vs_fp32_db:g} dB PSNR "
                          f"of fp32's output, natural sets losing at most {max_loss_db:g} dB on average; fp32's "
                          f"validation PSNR {fp32_psnr:.2f} dB); {detail}; nothing was written")
    # Recipes that run the same kernels (types, and the same ops left in float) have the same speed
    # whatever one timing on a shared machine says: each counts at its group's best time.
    def kernels(c):
        return c["recipe"]["activations"], c["recipe"]["weights"], tuple(sorted(c["float_ops"].items()))

    group_time: dict = {}
    for c in scored:
        group_time[kernels(c)] = min(group_time.get(kernels(c), c["latency_s"]), c["latency_s"])
    fastest = min(group_time[kernels(c)] for c in passing)
    tied = [c for c in passing if group_time[kernels(c)] <= SPEED_TIE * fastest]
    best_psnr = max(c["psnr"] for c in tied)
    return min((c for c in tied if c["psnr"] >= best_psnr - PSNR_TIE_DB),
               key=lambda c: (group_time[kernels(c)], -c["psnr"]))


def require_keepable(recipes: list[Recipe]) -> None:
    """ValueError unless one of ``recipes`` could be kept: 16-bit activations are measured for reference only."""
    if not recipes:
        raise ValueError("no recipe to try")
    if not any(recipe.activations in EIGHT_BIT for recipe in recipes):
        raise ValueError(f"no recipe has 8-bit activations ({', '.join(EIGHT_BIT)}): 16-bit ones are measured "
                         f"for reference only and never kept")


def quantize_model(fp32_path: str | Path, out_path: str | Path, data_dir: str | Path,
                   recipes: list[Recipe] | None = None, *, max_loss_db: float = MAX_MEAN_LOSS_DB,
                   min_psnr_vs_fp32_db: float = MIN_PSNR_VS_FP32_DB, threads: int | None = None,
                   report: Callable[[str], None] = lambda line: None) -> dict:
    """Quantize ``fp32_path`` to ``out_path`` with the best of ``recipes`` (default: one, the
    default Recipe) and return the comparison. Raises ParityError, writing nothing, when no recipe
    passes the gate (gate_sets: validation faces, and photos, faces and synthetic images calibration
    never sees): every image's int8 output within ``min_psnr_vs_fp32_db`` PSNR of fp32's, and every
    natural set losing at most ``max_loss_db`` of fp32's PSNR against the ground truth on average;
    ValueError, before any work, when no recipe has 8-bit activations (none could be kept)."""
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    recipes = recipes or [Recipe()]
    require_keepable(recipes)
    _, info = open_session(fp32_path, "cpu", threads)
    if info.metadata.get("precision", "fp32") != "fp32":
        raise ModelError(f"{str(fp32_path)!r} is already quantized ({info.metadata['precision']}); "
                         f"quantize the fp32 model it came from")
    images = check_images(info, data_dir)
    report(f"calibrating and checking on {len(images.validation)} validation faces of {data_dir}"
           + (" (clean and degraded, at the strengths the model's estimator reads)" if info.conditioned else ""))
    timing_input = {INPUT_NAME: to_batch([np.random.default_rng(0).random(TIMING_SIZE, dtype=np.float32)]),
                    **({STRENGTH_NAME: np.zeros(1, np.float32)} if info.conditioned else {})}
    with tempfile.TemporaryDirectory(prefix="enhance-edge-quantize-") as tmp_dir:
        prepared = Path(tmp_dir) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared))
        fp32 = assess(fp32_path, images.validation, threads, timing_input, images.gates)
        report(f"fp32: validation PSNR {fp32['psnr']:.3f} dB, {fp32['latency_s'] * 1e3:.1f} ms at "
               f"{TIMING_SIZE[0]}x{TIMING_SIZE[1]}")
        candidates = []
        for index, recipe in enumerate(recipes):
            candidate = try_recipe(recipe, Path(tmp_dir) / f"candidate{index}.onnx", prepared, images, fp32, threads,
                                   timing_input)
            candidates.append(candidate)
            report(describe(candidate, fp32))
            for line in describe_gate(candidate) if "gate" in candidate else ():
                report(line)
        chosen = choose(candidates, fp32["psnr"], max_loss_db, min_psnr_vs_fp32_db)
        tested = scores_on_test(fp32_path, chosen["path"], images, threads)
        summary = summary_record(chosen, fp32, candidates, images, tested, (min_psnr_vs_fp32_db, max_loss_db))
        write_int8_model(chosen["path"], out_path, info, summary)
    return summary


@dataclass(frozen=True)
class CheckImages:
    """What quantization calibrates on and checks with: the validation faces (and, for a conditioned
    model, a degraded copy), the test faces (reported, never used to choose), the gate sets, and the
    calibration mix's groups of LR images, one per kind, which "mix" recipes also calibrate on (never
    gate images)."""

    validation: PairSet
    test: PairSet
    gates: GateSets
    mix: list[np.ndarray]


def check_images(info: ModelInfo, data_dir: str | Path) -> CheckImages:
    """The images of a face folder, and the calibration mix, that a quantization of ``info``'s model uses."""
    # The training run's HR size and subject split (its seed), so that no training face is validation or test.
    pairs = load_pairs(data_dir, trained_hr_size(info), trained_seed(info), scale=info.scale)
    validation, test = with_degraded(pairs["validation"], info), pairs["test"]
    mix = [image_set(info, [f"{kind} #{index}" for index in range(len(hrs))], hrs)[2]
           for kind, hrs in calibration_mix(validation.hr.shape[1:3]).items()]
    return CheckImages(validation, test, gate_sets(info, validation), mix)


def try_recipe(recipe: Recipe, path: Path, prepared: Path, images: CheckImages, fp32: dict, threads: int | None,
               timing_input: dict[str, np.ndarray]) -> dict:
    """``recipe``'s candidate: quantized into ``path``, assessed, and gated against ``fp32``'s
    assessment (its outputs on the gate sets); a recipe onnxruntime cannot quantize or run is recorded
    with its error, not fatal."""
    candidate = {"name": recipe.name, "recipe": recipe.to_dict(), "path": path}
    ranges = path.parent / (f"ranges-{recipe.calibration}-{recipe.silu}-{recipe.output}-{recipe.calibration_set}-"
                            f"{recipe.residual}-{recipe.output_convs}.json")
    try:
        quantize_with(recipe, prepared, path, images.validation.lr, ranges, images.mix)
        candidate.update(assess(path, images.validation, threads, timing_input, images.gates))
        candidate["gate"] = gate_table(fp32["outputs"], candidate.pop("outputs"), images.gates)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's quantizer and sessions raise any type
        candidate["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return candidate


def check_int8_file(fp32_path: str | Path, int8_path: str | Path, data_dir: str | Path,
                    threads: int | None = None) -> GateTable:
    """The gate's table of an int8 file made from ``fp32_path`` however it was made (`quantize`, QAT,
    another tool), on the gate images of ``data_dir`` as `quantize` makes them; gate.gate_failures
    says what it breaks."""
    info = open_session(fp32_path, "cpu", threads)[1]
    gates = check_images(info, data_dir).gates
    return gate_table(*(set_outputs(scoring_session(Path(path), threads), gates) for path in (fp32_path, int8_path)),
                      gates)


def scores_on_test(fp32_path: Path, int8_path: Path, images: CheckImages,
                   threads: int | None) -> dict[str, dict | None]:
    """PSNR/SSIM of both models on the test faces (None without test faces), reported only."""
    test = images.test
    return {name: score(list(test.hr), upscale_faces(scoring_session(path, threads), test.lr))
            if len(test) else None for name, path in (("fp32", fp32_path), ("int8", int8_path))}


def summary_record(chosen: dict, fp32: dict, candidates: list[dict], images: CheckImages,
                   tested: dict[str, dict | None], limits: tuple[float, float]) -> dict:
    """The comparison `quantize` returns and stores in the int8 model: the kept recipe, the gate's
    limits (PSNR against fp32, mean loss) and its table, validation and test scores, speed, and every
    candidate."""
    return {
        "recipe": chosen["recipe"],
        "min_psnr_vs_fp32_db": limits[0],
        "max_loss_db": limits[1],
        # how the gate computed int8: the same on every machine
        "scored_as": "exact int8 arithmetic (QDQ in float)",
        "gate": chosen["gate"],
        "validation": {"faces": len(images.validation), "fp32": {k: fp32[k] for k in ("psnr", "ssim")},
                       "int8": {k: chosen[k] for k in ("psnr", "ssim")}},
        "test": {"faces": len(images.test), **tested},
        "speedup_at_256": fp32["latency_s"] / chosen["latency_s"],
        "float_ops": chosen["float_ops"],
        "fp32_latency_s": fp32["latency_s"],
        "candidates": [{k: v for k, v in c.items() if k != "path"} for c in candidates],
    }


def write_int8_model(int8_path: Path, out_path: Path, info: ModelInfo, summary: dict) -> None:
    """The kept recipe's model, with the fp32 model's metadata and its own scores and comparison, to ``out_path``."""
    model = onnx.load(int8_path)
    # The fp32 model's own scores would be stale here: the int8 model states its own (the
    # interpolation baselines of the fp32 "test" entry do not depend on the model and stay).
    own_scores = {"validation": json.dumps(summary["validation"]["int8"])}
    if summary["test"]["int8"] is not None:
        own_scores["test"] = json.dumps({**(info.json_field("test") or {}), "images": summary["test"]["faces"],
                                         **summary["test"]["int8"]})
    metadata = {**info.metadata, **own_scores, "precision": "int8",
                INT8_WEIGHT_BITS_KEY: str(summary["recipe"]["weight_bits"]),
                "quantization": json.dumps(summary, default=as_json)}
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, metadata)
    write_model_file(out_path, model.SerializeToString())


def with_degraded(pairs: PairSet, info: ModelInfo) -> PairSet:
    """For a model conditioned on the degradation level, ``pairs`` and a degraded copy of them (the
    training run's fixed validation draw, from the ranges in the model's metadata): int8 must hold at
    every strength it will run at. Other models: ``pairs`` as they are."""
    if not info.conditioned:
        return pairs
    from ..train.data import VALIDATION_STREAM, degraded_lrs  # torch is here whenever quantize is

    config = DegradationConfig.from_dict(info.json_field("degradation_config"))
    degraded, _ = degraded_lrs(pairs.hr, np.arange(len(pairs)), config, trained_seed(info), VALIDATION_STREAM,
                               info.scale)
    return PairSet([*pairs.names, *(f"{name}{DEGRADED_SUFFIX}" for name in pairs.names)],
                   np.concatenate([pairs.hr, pairs.hr]), np.concatenate([pairs.lr, degraded]))


def describe_gate(candidate: dict) -> list[str]:
    """A candidate's gate table (gate.describe_table)."""
    return describe_table(candidate["gate"])


def describe(candidate: dict, fp32: dict) -> str:
    """One line per recipe for the command's progress report."""
    if "error" in candidate:
        return f"{candidate['name']:<46} failed: {candidate['error']}"
    floats = ", ".join(f"{op} x{n}" for op, n in sorted(candidate["float_ops"].items())) or "none"
    return (f"{candidate['name']:<46} PSNR {candidate['psnr']:.3f} dB ({candidate['psnr'] - fp32['psnr']:+.3f}), "
            f"{candidate['latency_s'] * 1e3:7.1f} ms ({fp32['latency_s'] / candidate['latency_s']:.2f}x fp32), "
            f"float ops: {floats}")
