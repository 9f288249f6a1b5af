"""PyTorch checkpoint -> ONNX: dynamic batch/height/width, onnxsim, metadata, parity check.

The file is written to a temporary path and only renamed into place once the parity check
against PyTorch has passed, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import onnxruntime as ort
import torch

from enhance_edge import __version__
from enhance_edge.errors import ModelError, ParityError
from enhance_edge.io.fileio import write_file
from enhance_edge.core.gates import PARITY_TOLERANCE
from enhance_edge.core.model import (DISABLED_OPTIMIZERS_KEY, FORMAT, INPUT_NAME, OUTPUT_NAME,
                                     RECEPTIVE_RADIUS_KEY, STRENGTH_NAME, STRENGTH_USED_NAME, WORKING_BYTES_KEY)
from enhance_edge.core.tiling import receptive_radius, working_bytes_per_pixel

from ..train.checkpoint import load_generator, run_config
from ..train.networks import DegradationEstimator, Generator
from ..train.warm_start import estimator_of, load_estimator
from .graph import LEVEL, StrengthCalibration, joined_model

OPSET = 17
# Two sizes at least, one odd, and a batch > 1: dynamic axes must really be dynamic.
PARITY_SHAPES = ((1, 1, 56, 46), (2, 1, 23, 37))
# onnxruntime's NCHWc layout transform runs float convolutions in blocks of 16 channels with
# AVX-512 (8 with AVX2), padding the feature maps to whole blocks. The 20-channel default then
# computes 32 channels: with the transform off it ran 20-32% faster (256x256 1-2 threads,
# 1024x1024 2 threads), while the 16-channel fast model ran 1.8x slower. Int8 convolutions
# do not use it (same speed either way).
NCHWC_BLOCK = 16


def model_metadata(generator: Generator, facts: dict[str, Any]) -> dict[str, str]:
    """The key/value pairs stored in the ONNX file; the runtime reads its contract from them."""
    config = generator.config
    return {
        "format": FORMAT,
        "scale": str(config.scale),
        "channels": str(config.in_channels),
        "value_range": "0,1",
        "layout": "NCHW",
        "dtype": "float32",
        "precision": "fp32",  # of the weights and arithmetic; `quantize` writes "int8"
        "colour": "luma" if config.in_channels == 1 else "rgb",
        "macs_per_input_pixel": str(config.macs_per_input_pixel()),
        "generator_config": json.dumps(config.to_dict()),
        # What tiling needs, stated so that the runtime does not rebuild it from the structure.
        RECEPTIVE_RADIUS_KEY: str(receptive_radius(config.to_dict())),
        WORKING_BYTES_KEY: str(working_bytes_per_pixel(config.to_dict())),
        "enhance_edge_version": __version__,
        **({DISABLED_OPTIMIZERS_KEY: "NchwcTransformer"} if config.channels % NCHWC_BLOCK else {}),
        **{key: value if isinstance(value, str) else json.dumps(value) for key, value in facts.items()},
    }


def _traced_onnx(module: torch.nn.Module, example: tuple[torch.Tensor, ...], input_names: list[str],
                 output_name: str, dynamic_axes: dict[str, dict[int, str]], simplify: bool = True) -> onnx.ModelProto:
    """Trace a module to ONNX and (unless not ``simplify``) simplify it with onnxsim."""
    import onnxsim

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export, but it handles
        # dynamic H/W for this plain convolutional graph without extra dependencies.
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), example, buffer, input_names=input_names, output_names=[output_name],
                          opset_version=OPSET, dynamo=False, dynamic_axes=dynamic_axes)
    if not simplify:
        return onnx.load_from_string(buffer.getvalue())
    simplified, ok = onnxsim.simplify(onnx.load_from_string(buffer.getvalue()))
    if not ok:
        raise ModelError("onnxsim could not validate the simplified model")
    return simplified


def _conditioned(generator: Generator) -> bool:
    return generator.config.condition == "degradation"


def to_onnx_model(generator: Generator, estimator: DegradationEstimator | None = None,
                  calibration: StrengthCalibration = StrengthCalibration()) -> onnx.ModelProto:
    """The generator as one ONNX model with dynamic N, H, W, its "rep" convolutions folded; a
    conditioned generator joined with its ``estimator`` (export/graph.py: the optional strength
    input and the strength_used output)."""
    generator = copy.deepcopy(generator).eval()
    generator.fold()
    image_axes = {0: "batch", 2: "height", 3: "width"}
    example = (torch.rand(*PARITY_SHAPES[0]),) + ((torch.rand(1, 1, 1, 1),) if _conditioned(generator) else ())
    input_names = [INPUT_NAME, LEVEL][:len(example)]
    axes = {INPUT_NAME: image_axes, OUTPUT_NAME: {0: "batch", 2: "out_height", 3: "out_width"},
            **({LEVEL: {0: "batch"}} if _conditioned(generator) else {})}
    model = _traced_onnx(generator, example, input_names, OUTPUT_NAME, axes)
    if estimator is None:
        return model
    # Not simplified: onnxsim would fold the high-pass gain into the first convolution's weights,
    # which then no longer carry the parameter names a warm start reads them back by.
    estimated = _traced_onnx(estimator.eval(), example[:1], [INPUT_NAME], LEVEL,
                             {INPUT_NAME: image_axes, LEVEL: {0: "batch"}}, simplify=False)
    return joined_model(model, estimated, INPUT_NAME, OUTPUT_NAME, STRENGTH_NAME, STRENGTH_USED_NAME, calibration)


def parity(onnx_bytes: bytes, generator: Generator, estimator: DegradationEstimator | None = None,
           calibration: StrengthCalibration = StrengthCalibration(), shapes=PARITY_SHAPES, seed: int = 0) -> list[dict]:
    """Max abs difference between onnxruntime and PyTorch (the unfolded network) for each input shape;
    a conditioned model at a random given strength and at "auto" (PyTorch: the estimator's calibrated
    level)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # not the warning that the optional strength is not a constant
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    results = []
    generator, estimator = generator.eval(), estimator.eval() if estimator is not None else None
    for shape in shapes:
        x = rng.random(shape, dtype=np.float32)
        cases: list[tuple[str, dict[str, np.ndarray], torch.Tensor | None]] = [("none", {}, None)]
        if estimator is not None:
            with torch.no_grad():
                reading = estimator(torch.from_numpy(x)).numpy()
            estimated = torch.from_numpy(calibration.apply(reading).astype(np.float32))
            given = float(rng.random(dtype=np.float32))
            cases = [(f"{given:.2f}", {STRENGTH_NAME: np.array([given], np.float32)},
                      torch.full((shape[0], 1, 1, 1), given)),
                     ("auto", {}, estimated)]
        for label, feeds, level in cases:
            with torch.no_grad():
                expected = (generator(torch.from_numpy(x)) if level is None
                            else generator(torch.from_numpy(x), level)).numpy()
            outputs = session.run(None, {INPUT_NAME: x, **feeds})
            if outputs[0].shape != expected.shape:
                raise ParityError(f"ONNX output shape {outputs[0].shape} != PyTorch {expected.shape} for input {shape}")
            worst = float(np.abs(outputs[0] - expected).max())
            if level is not None:
                worst = max(worst, float(np.abs(outputs[1] - level.numpy()).max()))
            results.append({"shape": list(shape), "strength": label, "max_abs_diff": worst})
    return results


def export_generator(generator: Generator, out_path: str | Path, facts: dict[str, Any] | None = None,
                     tolerance: float = PARITY_TOLERANCE, estimator: DegradationEstimator | None = None,
                     calibration: StrengthCalibration = StrengthCalibration()) -> list[dict]:
    """Export, add metadata, check parity and only then move the file into place. A conditioned
    generator needs its ``estimator``, which goes into the graph and is checked too."""
    if _conditioned(generator) != (estimator is not None):
        raise ModelError("a generator conditioned on the degradation level is exported with its estimator, "
                         "and only such a generator")
    out_path = Path(out_path)
    model = to_onnx_model(generator, estimator, calibration)
    model.producer_name, model.producer_version = "enhance-edge", __version__
    calibrated = ({"strength_calibration": calibration.to_dict(), "estimator_config": estimator.config.to_dict()}
                  if estimator is not None else {})
    onnx.helper.set_model_props(model, model_metadata(generator, {**(facts or {}), **calibrated}))
    onnx_bytes = model.SerializeToString()
    results = parity(onnx_bytes, generator, estimator, calibration)
    worst = max(r["max_abs_diff"] for r in results)
    if not worst <= tolerance:  # also catches NaN
        raise ParityError(f"ONNX and PyTorch differ by {worst:.3g} (> {tolerance:g}) on shapes "
                          f"{[r['shape'] for r in results]}; nothing was written")
    write_model_file(out_path, onnx_bytes)
    return results


def write_model_file(path: str | Path, data: bytes) -> None:
    """Write a model atomically (its folder created), a failure being one ModelError naming the file."""
    path = Path(path)
    try:
        write_file(path, data)
    except OSError as exc:
        raise ModelError(f"{path}: cannot write ({exc.strerror or exc})") from None


def export_checkpoint(checkpoint_path: str | Path, out_path: str | Path, tolerance: float = PARITY_TOLERANCE,
                      calibrate_on: str | Path | None = None,
                      report: Callable[[str], None] = lambda line: None,
                      estimator_from: str | Path | None = None) -> list[dict]:
    """Export a training checkpoint's generator (with its degradation estimator, for a conditioned
    one), with its training facts in the metadata; ``calibrate_on``: a face folder on whose
    validation split (the run's) the strength calibration is chosen (export/calibrate.py);
    ``estimator_from``: a bundled model, model file or checkpoint whose estimator goes into the
    graph instead of the checkpoint's own (train/warm_start.py: a reading does not depend on the
    generator it trained beside)."""
    generator, state = load_generator(checkpoint_path)
    config = run_config(checkpoint_path, state)
    estimator = None
    if estimator_from is not None:
        if not _conditioned(generator):
            raise ModelError(f"{str(checkpoint_path)!r}'s generator is not conditioned on the degradation level: "
                             f"it has no estimator for --estimator-from {str(estimator_from)!r} to replace")
        estimator = load_estimator(estimator_from)
    elif _conditioned(generator):
        estimator = estimator_of(str(checkpoint_path), config.estimator, state.get("estimator"))
    facts = {"trained_on": state.get("data", {}), "epoch": state.get("epoch"),
             "train_config": state["config"]["train"], "validation": state.get("validation", {}),
             **({"degradation_config": config.degradation.to_dict()} if config.degradation is not None else {}),
             **({"estimator_from": str(estimator_from)} if estimator_from is not None else {})}
    calibration = StrengthCalibration()
    if estimator is not None and calibrate_on is not None:
        from .calibrate import choose_calibration

        calibration, table = choose_calibration(generator, estimator.eval(), config, calibrate_on)
        facts["strength_calibration_validation"] = table
        report(f"strength calibration: zero below {calibration.zero_below:g}, gain {calibration.gain:g} "
               f"(validation mean of clean and degraded PSNR {table['chosen']:.3f} dB, uncalibrated "
               f"{table['uncalibrated']:.3f})")
    return export_generator(generator, out_path, facts, tolerance, estimator, calibration)


def record_test_scores(model_path: str | Path, data_dir: str | Path,
                       out_path: str | Path | None = None) -> dict[str, Any]:
    """Score the written model on the test split (docs/evaluation.md) and store the scores in its metadata.

    The split is drawn with the seed the model was trained with and the faces are made at its
    training HR size (both from its metadata), so no training subject is scored as test. The
    scored model is written to ``out_path`` (default: over ``model_path``) only once scoring
    has succeeded. Test scores are written into the model for users to read; nothing in
    training or export looks at them to choose anything.
    """
    from enhance_edge.eval.dataset import trained_hr_size, trained_seed
    from enhance_edge.eval.evaluate import evaluate_folder, finite_or_none
    from enhance_edge.core.upscaler import Upscaler

    upscaler = Upscaler(model_path)
    results = evaluate_folder(data_dir, upscaler, trained_hr_size(upscaler.info), splits=("test",),
                              seed=trained_seed(upscaler.info))["test"]
    model = onnx.load(str(model_path))
    metadata = {p.key: p.value for p in model.metadata_props}
    metadata["test"] = json.dumps(finite_or_none(
        {"images": results["images"], **results["model"],
         "baselines": {k: v for k, v in results.items() if k not in ("images", "model")}}))
    onnx.helper.set_model_props(model, metadata)
    write_model_file(model_path if out_path is None else out_path, model.SerializeToString())
    return results
