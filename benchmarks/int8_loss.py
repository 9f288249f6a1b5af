"""Where an int8 model's loss comes from: per image set, per group of quantized tensors, per tensor.

    python -m enhance_edge.benchmarks.int8_loss MODEL.onnx MODEL-int8.onnx   # the int8 file from `quantize`

Every activation an int8 QDQ model quantizes is a QuantizeLinear -> DequantizeLinear pair. A
variant of the model that keeps only some pairs (the others bypassed: the float tensor flows on)
and runs at onnxruntime's basic optimization level (no QDQ fusion: Q/DQ compute in float, exactly
as the int8 kernels would round, without their accumulation details) shows what those tensors
alone cost. The cost is given as output noise: the mean squared difference from fp32's unrounded
output in 8-bit levels squared. Noise adds up across tensors and turns into a PSNR loss that grows
with the image's quality: 10 log10(1 + noise / fp32's squared error against HR). Also measured:
the share of each tensor's fp32 values outside the range calibration gave it (clipping).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from enhance_edge.eval.dataset import load_pairs, trained_hr_size, trained_seed
from enhance_edge.core.model import open_session
from enhance_edge.eval.protocol import psnr

from ..export.calibration_mix import gate_images, lr_of
from ..export.quantize import model_feeds
from .run import DEFAULT_DATA_DIR

YALE_FACES = 48  # validation faces measured (of 320): enough for a mean, quick on 2 cores


def activation_pairs(model: onnx.ModelProto) -> dict[str, tuple[onnx.NodeProto, onnx.NodeProto]]:
    """Quantized activation tensor -> its (QuantizeLinear, DequantizeLinear); weights are not listed."""
    initializers = {t.name for t in model.graph.initializer}
    quantize = {n.output[0]: n for n in model.graph.node if n.op_type == "QuantizeLinear"
                and n.input[0] not in initializers}
    return {q.input[0]: (q, dq) for dq in model.graph.node if dq.op_type == "DequantizeLinear"
            for q in [quantize.get(dq.input[0])] if q is not None}


def tensor_range(model: onnx.ModelProto, q: onnx.NodeProto) -> tuple[float, float, float]:
    """(low, high, step) a QuantizeLinear node can represent."""
    from onnx import numpy_helper

    initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    scale, zero = float(initializers[q.input[1]]), initializers[q.input[2]]
    info = np.iinfo(zero.dtype)
    return (info.min - int(zero)) * scale, (info.max - int(zero)) * scale, scale


def keep_only(model: onnx.ModelProto, keep: set[str]) -> onnx.ModelProto:
    """A copy of the QDQ model in which only the activations in ``keep`` are quantized."""
    variant = onnx.ModelProto()
    variant.CopyFrom(model)
    bypass = {dq.output[0]: tensor for tensor, (_, dq) in activation_pairs(variant).items() if tensor not in keep}
    dropped = {name for tensor, (q, dq) in activation_pairs(variant).items() if tensor not in keep
               for name in (q.name, dq.name)}
    nodes = [n for n in variant.graph.node if n.name not in dropped]
    for node in nodes:
        for index, name in enumerate(node.input):
            if name in bypass:
                node.input[index] = bypass[name]
    del variant.graph.node[:]
    variant.graph.node.extend(nodes)
    return variant


def simulated(model: onnx.ModelProto, disabled: list[str]) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # bypassed pairs leave their scales unused: expected
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"],
                                disabled_optimizers=disabled or None)


def float_outputs(session: ort.InferenceSession, sets: dict) -> dict[str, np.ndarray]:
    """Unrounded outputs in 8-bit levels, per set."""
    return {name: session.run(None, model_feeds(lr))[0][:, 0] * 255 for name, (_, lr) in sets.items()}


def image_sets(info, data_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(HR, LR) per set: Yale validation and test faces, then the gate sets."""
    hr_size = trained_hr_size(info) or (92, 112)
    pairs = load_pairs(data_dir, hr_size, trained_seed(info), scale=info.scale)
    sets = {"yale validation": (pairs["validation"].hr[::len(pairs["validation"]) // YALE_FACES][:YALE_FACES],
                                None),
            "yale test": (pairs["test"].hr[::len(pairs["test"]) // YALE_FACES][:YALE_FACES], None)}
    sets.update({name: (hrs, None) for name, hrs in gate_images((hr_size[1], hr_size[0]), info.scale).items()})
    return {name: (hrs, lr_of(hrs, info.scale)) for name, (hrs, _) in sets.items()}


def squared_error(reference: np.ndarray, output: np.ndarray) -> np.ndarray:
    """Per image mean squared difference."""
    return ((reference.astype(np.float64) - output) ** 2).reshape(len(output), -1).mean(axis=1)


def group_of(tensor: str) -> str:
    if tensor in ("input",) or tensor.startswith("/Pad"):
        return "input (exact: 8-bit pixels)"
    if "Sigmoid" in tensor or "/act" in tensor and "Mul" in tensor or "_act/Mul" in tensor:
        return "SiLU (Sigmoid, Mul)"
    if tensor.endswith("Add_output_0"):
        return "residual adds (block outputs)"
    return "convolution outputs"


def analyse(fp32_path: Path, int8_path: Path, data_dir: Path, top: int = 6, single: bool = True) -> dict:
    fp32_session, info = open_session(fp32_path, "cpu", 1)
    int8_session, int8_info = open_session(int8_path, "cpu", 1)
    sets = image_sets(info, data_dir)
    reference = float_outputs(fp32_session, sets)
    fp32_error = {name: squared_error(hr, np.clip(reference[name], 0, 255)) for name, (hr, _) in sets.items()}
    model = onnx.load(str(int8_path))
    pairs = activation_pairs(model)
    disabled = int8_info.disabled_optimizers

    def noise(session) -> dict[str, np.ndarray]:
        return {name: squared_error(reference[name], out) for name, out in float_outputs(session, sets).items()}

    result = {"sets": {}, "variants": {}, "tensors": {}}
    real = float_outputs(int8_session, sets)
    for name, (hr, _) in sets.items():
        fp32_psnr = np.array([psnr(h, o)
                              for h, o in zip(hr, np.clip(reference[name], 0, 255).round().astype(np.uint8))])
        int8_psnr = np.array([psnr(h, o) for h, o in zip(hr, np.clip(real[name], 0, 255).round().astype(np.uint8))])
        result["sets"][name] = {"images": len(hr), "fp32_psnr": float(fp32_psnr.mean()),
                                "mean_loss_db": float((fp32_psnr - int8_psnr).mean()),
                                "worst_loss_db": float((fp32_psnr - int8_psnr).max()),
                                "fp32_mse": float(fp32_error[name].mean()),
                                "int8_noise": float(squared_error(reference[name], real[name]).mean())}
    groups = defaultdict(set)
    for tensor in pairs:
        groups[group_of(tensor)].add(tensor)
    variants = {"all (simulated)": set(pairs), "weights only": set(),
                **{f"weights + {group}": tensors for group, tensors in groups.items()}}
    for label, keep in variants.items():
        result["variants"][label] = {name: float(v.mean()) for name, v in noise(simulated(keep_only(model, keep),
                                                                                          disabled)).items()}
    # clipping and steps, from fp32's own activations
    probe = onnx.load(str(fp32_path))
    known = {name for node in probe.graph.node for name in node.output}
    probed = [t for t in pairs if t in known]
    del probe.graph.output[1:]
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in probed)
    probe_session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    weights_only = result["variants"]["weights only"]
    for tensor in probed:
        low, high, step = tensor_range(model, pairs[tensor][0])
        entry = {"range": [low, high], "step": step, "clipped": {}, "peak": {}}
        result["tensors"][tensor] = entry
    for name, (_, lr) in sets.items():
        values = probe_session.run(None, model_feeds(lr))[1:]
        for tensor, value in zip(probed, values):
            low, high = result["tensors"][tensor]["range"]
            entry = result["tensors"][tensor]
            half_step = entry["step"] / 2
            entry["clipped"][name] = float(((value < low - half_step) | (value > high + half_step)).mean())
            entry["peak"][name] = [float(value.min()), float(value.max())]
    # single tensors: the largest contributors on the worst set
    worst_set = max(result["sets"], key=lambda s: result["sets"][s]["mean_loss_db"])
    for tensor in probed if single else ():
        if group_of(tensor).startswith("input"):
            continue
        alone = noise(simulated(keep_only(model, {tensor}), disabled))
        result["tensors"][tensor]["noise_alone"] = {name: float(v.mean()) - weights_only[name]
                                                    for name, v in alone.items()}
    result["worst_set"] = worst_set
    result["top"] = sorted((t for t in probed if "noise_alone" in result["tensors"][t]),
                           key=lambda t: -result["tensors"][t]["noise_alone"][worst_set])[:top]
    return result


def markdown(result: dict) -> str:
    sets = list(result["sets"])
    lines = ["| set | images | fp32 PSNR | int8 loss: mean / worst (dB) | fp32 error² | int8 noise² | "
             + " | ".join(result["variants"]) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(result["variants"])]
    for name in sets:
        s = result["sets"][name]
        lines.append(f"| {name} | {s['images']} | {s['fp32_psnr']:.2f} | {s['mean_loss_db']:.2f} / "
                     f"{s['worst_loss_db']:.2f} | {s['fp32_mse']:.2f} | {s['int8_noise']:.3f} | "
                     + " | ".join(f"{result['variants'][v][name]:.3f}" for v in result["variants"]) + " |")
    clipped = max(((t, s, v["clipped"][s]) for t, v in result["tensors"].items() for s in sets),
                  key=lambda x: x[2])
    lines.append(f"\nMost clipped: `{clipped[0]}`, {clipped[2]:.2%} of its values on {clipped[1]}.")
    if not result["top"]:
        return "\n".join(lines)
    lines += ["", f"Largest single-tensor noise on {result['worst_set']} (levels², beyond weights alone), "
                  "its calibrated range and step, and the share of its fp32 values clipped:", "",
              "| tensor | range | step | noise alone | clipped: yale validation / " + result["worst_set"] + " |",
              "|---|---|---|---|---|"]
    for tensor in result["top"]:
        t = result["tensors"][tensor]
        lines.append(f"| `{tensor}` | [{t['range'][0]:.2f}, {t['range'][1]:.2f}] | {t['step']:.4f} | "
                     f"{t['noise_alone'][result['worst_set']]:.3f} | {t['clipped']['yale validation']:.2%} / "
                     f"{t['clipped'][result['worst_set']]:.2%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp32", type=Path)
    parser.add_argument("int8", type=Path)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    parser.add_argument("--groups-only", action="store_true",
                        help="skip the one-tensor-at-a-time variants (one model run per tensor)")
    args = parser.parse_args(argv)
    result = analyse(args.fp32, args.int8, args.data, single=not args.groups_only)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(markdown(result))


if __name__ == "__main__":
    main()
