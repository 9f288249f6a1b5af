"""PyTorch checkpoint -> ONNX: dynamic batch/height/width, onnxsim, metadata, parity check.

The file is written to a temporary path and only renamed into place once the parity check
against PyTorch has passed, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from enhance_edge import __version__
from enhance_edge.errors import ModelError, ParityError
from enhance_edge.io.fileio import write_file
from enhance_edge.core.gates import PARITY_TOLERANCE
from enhance_edge.core.model import (CLEAN_BELOW_KEY, CLEAN_MODEL_KEY, DISABLED_OPTIMIZERS_KEY, ESTIMATOR_KEY, FORMAT,
                                     INPUT_NAME, OUTPUT_NAME, RECEPTIVE_RADIUS_KEY, STRENGTH_NAME, WORKING_BYTES_KEY)
from enhance_edge.core.tiling import receptive_radius, working_bytes_per_pixel

from ..train.checkpoint import load, load_generator, run_config
from ..train.networks import DegradationEstimator, Generator

OPSET = 17
# Two sizes at least, one odd, and a batch > 1: dynamic axes must really be dynamic.
PARITY_SHAPES = ((1, 1, 56, 46), (2, 1, 23, 37))
# onnxruntime's NCHWc layout transform runs float convolutions in blocks of 16 channels with
# AVX-512 (8 with AVX2), padding the feature maps to whole blocks. The 20-channel default then
# computes 32 channels: with the transform off it ran 20-32% faster (256x256 1-2 threads,
# 1024x1024 2 threads), while the 16-channel fast model ran 1.8x slower. Int8 convolutions
# do not use it (same speed either way).
NCHWC_BLOCK = 16


def model_metadata(generator: Generator, facts: dict[str, Any],
                   estimator: DegradationEstimator | None = None) -> dict[str, str]:
    """The key/value pairs stored in the ONNX file; the runtime reads its contract from them.
    A conditioned generator carries its estimator, as an fp32 ONNX model in base64."""
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
        **({ESTIMATOR_KEY: base64.b64encode(estimator_onnx_bytes(estimator)).decode("ascii")} if estimator else {}),
        **{key: value if isinstance(value, str) else json.dumps(value) for key, value in facts.items()},
    }


def _traced_onnx(module: torch.nn.Module, example: tuple[torch.Tensor, ...], input_names: list[str],
                 output_name: str, dynamic_axes: dict[str, dict[int, str]], simplify: bool = True) -> bytes:
    """Trace a module to ONNX and (unless not ``simplify``) simplify it with onnxsim."""
    import onnxsim

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export, but it handles
        # dynamic H/W for this plain convolutional graph without extra dependencies.
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), example, buffer, input_names=input_names, output_names=[output_name],
                          opset_version=OPSET, dynamo=False, dynamic_axes=dynamic_axes)
    model = onnx.load_from_string(buffer.getvalue())
    if not simplify:
        return model.SerializeToString()
    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise ModelError("onnxsim could not validate the simplified model")
    return simplified.SerializeToString()


def estimator_onnx_bytes(estimator: DegradationEstimator) -> bytes:
    """The degradation estimator as ONNX: (N, 1, H, W) -> (N, 1, 1, 1) levels, dynamic N, H, W.

    Not simplified: onnxsim would fold the high-pass gain into the first convolution's weights,
    which then no longer carry the parameter names a warm start reads them back by."""
    return _traced_onnx(estimator, (torch.rand(*PARITY_SHAPES[0]),), [INPUT_NAME], "level",
                        {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, "level": {0: "batch"}}, simplify=False)


def _conditioned(generator: Generator) -> bool:
    return generator.config.condition == "degradation"


def to_onnx_bytes(generator: Generator) -> bytes:
    """Trace the generator to ONNX with dynamic N, H, W and simplify it with onnxsim; a conditioned
    generator gets its second input, the (N, 1, 1, 1) strength."""
    example = (torch.rand(*PARITY_SHAPES[0]),) + ((torch.rand(1, 1, 1, 1),) if _conditioned(generator) else ())
    input_names = [INPUT_NAME, STRENGTH_NAME][:len(example)]
    axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
            OUTPUT_NAME: {0: "batch", 2: "out_height", 3: "out_width"},
            **({STRENGTH_NAME: {0: "batch"}} if _conditioned(generator) else {})}
    return _traced_onnx(generator, example, input_names, OUTPUT_NAME, axes)


def parity(onnx_bytes: bytes, generator: Generator, shapes=PARITY_SHAPES, seed: int = 0) -> list[dict]:
    """Max abs difference between onnxruntime and PyTorch for each input shape (a conditioned
    generator at random strengths)."""
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    results = []
    for shape in shapes:
        x = rng.random(shape, dtype=np.float32)
        feeds = {INPUT_NAME: x}
        if _conditioned(generator):
            feeds[STRENGTH_NAME] = rng.random((shape[0], 1, 1, 1), dtype=np.float32)
        with torch.no_grad():
            expected = generator(*(torch.from_numpy(value) for value in feeds.values())).numpy()
        actual = session.run(None, feeds)[0]
        if actual.shape != expected.shape:
            raise ParityError(f"ONNX output shape {actual.shape} != PyTorch {expected.shape} for input {shape}")
        results.append({"shape": list(shape), "max_abs_diff": float(np.abs(actual - expected).max())})
    return results


def estimator_parity(estimator: DegradationEstimator, seed: int = 0) -> list[dict]:
    """Max abs difference between the embedded estimator in onnxruntime and PyTorch per input shape."""
    session = ort.InferenceSession(estimator_onnx_bytes(estimator), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    results = []
    for shape in PARITY_SHAPES:
        x = rng.random(shape, dtype=np.float32)
        with torch.no_grad():
            expected = estimator(torch.from_numpy(x)).numpy()
        actual = session.run(None, {INPUT_NAME: x})[0]
        results.append({"shape": list(shape), "max_abs_diff": float(np.abs(actual - expected).max()),
                        "network": "estimator"})
    return results


def export_generator(generator: Generator, out_path: str | Path, facts: dict[str, Any] | None = None,
                     tolerance: float = PARITY_TOLERANCE, estimator: DegradationEstimator | None = None) -> list[dict]:
    """Export, add metadata, check parity and only then move the file into place. A conditioned
    generator needs its ``estimator``, which goes into the metadata and is checked too."""
    if _conditioned(generator) != (estimator is not None):
        raise ModelError("a generator conditioned on the degradation level is exported with its estimator, "
                         "and only such a generator")
    out_path = Path(out_path)
    model = onnx.load_from_string(to_onnx_bytes(generator))
    model.producer_name, model.producer_version = "enhance-edge", __version__
    onnx.helper.set_model_props(model, model_metadata(generator, facts or {}, estimator))
    onnx_bytes = model.SerializeToString()
    results = parity(onnx_bytes, generator) + (estimator_parity(estimator.eval()) if estimator is not None else [])
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
                      clean_model: str | Path | None = None, clean_below: float | None = None,
                      estimator_from: str | Path | None = None) -> list[dict]:
    """Export a training checkpoint's generator, with its training facts in the metadata.

    A conditioned generator may name ``clean_model``, an unconditioned model file that must sit
    beside ``out_path``, to run instead of it below strength ``clean_below`` (model.CLEAN_MODEL_KEY).
    ``estimator_from``: another run's checkpoint whose degradation estimator to carry instead of this
    run's own; the estimator reads the level alone, whatever the generator, so any run with the same
    degradation ranges trains it (a longer one, better).
    """
    generator, state = load_generator(checkpoint_path)
    config = run_config(checkpoint_path, state)
    clean_facts = {}
    if clean_model is not None:
        clean_model, out_dir = Path(clean_model), Path(out_path).resolve().parent
        if not _conditioned(generator) or clean_below is None or not 0.0 < clean_below <= 1.0:
            raise ModelError("a clean model goes with a generator conditioned on the degradation level and a "
                             f"strength from 0 to 1 below which it runs, got {clean_below!r}")
        if not clean_model.is_file() or clean_model.resolve().parent != out_dir:
            raise ModelError(f"the clean model {str(clean_model)!r} must be a file beside the output, in {out_dir}")
        clean_facts = {CLEAN_MODEL_KEY: clean_model.name, CLEAN_BELOW_KEY: str(clean_below)}
    estimator = None
    if _conditioned(generator):
        source, source_state = checkpoint_path, state
        if estimator_from is not None:
            source, source_state = estimator_from, load(estimator_from)
            source_config = run_config(estimator_from, source_state)
            if source_config.degradation != config.degradation:
                raise ModelError(f"{str(estimator_from)!r} learned other degradation ranges than "
                                 f"{str(checkpoint_path)!r}: its estimator reads another level")
            config = replace(config, estimator=source_config.estimator)
        estimator = DegradationEstimator(config.estimator)
        try:
            estimator.load_state_dict(source_state["estimator"])
        except (KeyError, RuntimeError) as exc:
            raise ModelError(f"{str(source)!r} holds no usable degradation estimator ({exc!r})") from None
    facts = {"trained_on": state.get("data", {}), "epoch": state.get("epoch"),
             "train_config": state["config"]["train"], "validation": state.get("validation", {}),
             **({"degradation_config": config.degradation.to_dict(), "estimator_config": config.estimator.to_dict()}
                if config.degradation is not None else {}), **clean_facts,
             **({"estimator_from": str(estimator_from)} if estimator_from is not None else {})}
    return export_generator(generator, out_path, facts, tolerance, estimator)


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
