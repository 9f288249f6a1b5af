"""The upscalers enhance-edge bench compares, behind one interface.

Every backend takes 8-bit low-resolution planes (N, H, W) and gives 8-bit planes (N, 2H, 2W).
``prepare`` does what a caller does once per image before calling the backend (to float, and a
conditioned model's strength, for the networks; to PIL or BGR for the others); ``run`` is the
backend's own call, the part that is timed; ``finish`` turns its result back into 8-bit planes for scoring.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
from onnx import numpy_helper
from PIL import Image

from enhance_edge.core.model import INPUT_NAME, STRENGTH_NAME, open_session
from enhance_edge.core.processing import from_unit_float
from enhance_edge.eval.protocol import interpolate

# OpenCV dnn_superres x2 models: name -> (file in the peers folder, dnn_superres algorithm).
PEERS = {"fsrcnn": ("FSRCNN_x2.pb", "fsrcnn"), "fsrcnn-small": ("FSRCNN-small_x2.pb", "fsrcnn"),
         "espcn": ("ESPCN_x2.pb", "espcn")}
# Largest |OpenCV - onnxruntime| accepted on [0, 1] outputs: int8 kernels may round differently.
OPENCV_TOLERANCE = 0.05


class Skipped(Exception):
    """A backend that cannot run here (a missing package, model file or peer weights)."""


@dataclass
class Backend:
    name: str
    prepare: Callable[[np.ndarray], Any]
    run: Callable[[Any], Any]
    finish: Callable[[Any], np.ndarray]

    def upscale(self, lr: np.ndarray) -> np.ndarray:
        return self.finish(self.run(self.prepare(lr)))


@dataclass(frozen=True)
class BackendSpec:
    """What to build, without building it: backends are made per thread count, in this process
    for timing or in a fresh one for peak memory."""

    name: str
    family: str  # "enhance-edge", "peer" or "interpolation"
    precision: str  # "fp32", "int8" or "uint8" (interpolation)
    make: Callable[[int], Backend]
    # The enhance-edge network whose convolutions it computes: its multiply-adds give the GFLOP/s.
    model: Path | None = None


def onnx_metadata(path: Path) -> dict[str, str]:
    """An ONNX file's metadata key/value pairs (its weights are not needed for them)."""
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def model_output(out: np.ndarray) -> np.ndarray:
    return from_unit_float(np.asarray(out)[:, 0])


# The format of enhance-edge 0.1's files, which the runtime no longer opens: a release of it is
# still timed and scored beside the current models, as its network alone at strength 0 (it ran a
# second file, its clean specialist, on the images it read as clean).
FORMAT_1 = "enhance-edge-onnx/1"


def _format_1_session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    conditioned = len(session.get_inputs()) == 2

    def prepare(lr: np.ndarray) -> dict[str, np.ndarray]:
        x = (np.asarray(lr, np.float32) / 255)[:, None]
        return {INPUT_NAME: x, **({STRENGTH_NAME: np.zeros((len(x), 1, 1, 1), np.float32)} if conditioned else {})}
    return session, prepare


def ort_backend(name: str, path: Path) -> Callable[[int], Backend]:
    """The model file in onnxruntime, fed only its image: a conditioned model reads each image's
    strength itself, as "auto" runs it."""
    from ..export.quantize import model_feeds

    def make(threads: int) -> Backend:
        if not path.is_file():
            raise Skipped(f"no model at {path}")
        if onnx_metadata(path).get("format") == FORMAT_1:
            session, prepare = _format_1_session(path, threads)
            return Backend(name, prepare, lambda feeds: session.run(None, feeds)[0], model_output)
        session, _ = open_session(path, "cpu", threads)
        return Backend(name, model_feeds, lambda feeds: session.run(None, feeds)[0], model_output)
    return make


def generator_from_onnx(path: Path):
    """The PyTorch generator with the very weights of an exported ONNX file (its config is in the
    metadata, its parameters are the initializers, which the exporter names after them)."""
    import torch

    from ..train.config import GeneratorConfig
    from ..train.networks import Generator

    model = onnx.load(str(path))
    metadata = {p.key: p.value for p in model.metadata_props}
    if "generator_config" not in metadata:
        raise Skipped(f"{path} has no generator_config metadata to rebuild the PyTorch model from")
    generator = Generator(GeneratorConfig.from_dict(json.loads(metadata["generator_config"])))
    generator.fold()  # a "rep" body ships folded, its parameters named after the folded convolutions
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer}
    state = {key: weights[key] for key in generator.state_dict() if key in weights}
    missing = sorted(set(generator.state_dict()) - set(state))
    if missing:
        raise Skipped(f"{path} lacks PyTorch parameters {missing[:3]}...")
    generator.load_state_dict(state)
    return generator.eval()


def torch_backend(path: Path) -> Callable[[int], Backend]:
    def make(threads: int) -> Backend:
        try:
            import torch
        except ImportError:
            raise Skipped("torch is not installed (pip install 'enhance-edge[train]')") from None
        if not path.is_file():
            raise Skipped(f"no model at {path}")
        from ..export.quantize import estimated_levels, model_feeds

        generator = generator_from_onnx(path)
        torch.set_num_threads(threads)
        info = open_session(path)[1]

        def prepare(lr: np.ndarray) -> tuple:  # a conditioned network at the strengths the file reads
            levels = estimated_levels(info, lr)
            return (torch.from_numpy(model_feeds(lr)[INPUT_NAME]),
                    *(() if levels is None else (torch.from_numpy(levels.reshape(-1, 1, 1, 1)),)))

        def run(inputs):
            with torch.inference_mode():
                return generator(*inputs)
        return Backend("pytorch-fp32", prepare, run, lambda y: model_output(y.numpy()))
    return make


def _cv2():
    try:
        import cv2
    except ImportError:
        raise Skipped("OpenCV is not installed (pip install 'enhance-edge[bench]')") from None
    return cv2


def _cv2_reason(exc: Exception) -> str:
    """The last line of an OpenCV error that says something (its messages end in a bare '>')."""
    lines = [line.strip("> ").strip() for line in str(exc).splitlines()]
    return next((line for line in reversed(lines) if line), "unknown error")


def opencv_dnn_backend(name: str, path: Path) -> Callable[[int], Backend]:
    def make(threads: int) -> Backend:
        cv2 = _cv2()
        if not path.is_file():
            raise Skipped(f"no model at {path}")
        cv2.setNumThreads(threads)
        try:
            net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:
            raise Skipped(f"OpenCV {cv2.__version__} cannot load {path.name}: {_cv2_reason(exc)}") from None

        def run(feeds):
            for name, value in feeds.items():
                net.setInput(value, name)
            return net.forward()
        # Guard against a silently wrong OpenCV (5.0 computes garbage with ONNX nets made after a
        # TensorFlow model was read in the same process): it must agree with onnxruntime.
        from ..export.quantize import model_feeds as feeds

        session, _ = open_session(path, "cpu", 1)
        probe = feeds(np.random.default_rng(0).integers(0, 256, (1, 12, 10), dtype=np.uint8))
        try:
            difference = float(np.max(np.abs(run(probe) - session.run(None, probe)[0])))
        except cv2.error as exc:
            raise Skipped(f"OpenCV {cv2.__version__} cannot run {path.name}: {_cv2_reason(exc)}") from None
        if not difference <= OPENCV_TOLERANCE:
            raise Skipped(f"OpenCV {cv2.__version__} disagrees with onnxruntime on {path.name} "
                          f"(max difference {difference:.3g})")
        return Backend(name, feeds, run, model_output)
    return make


def pillow_backend(method: str) -> Callable[[int], Backend]:
    def make(threads: int) -> Backend:  # Pillow's resize is single-threaded
        return Backend(f"pillow-{method}", lambda lr: [Image.fromarray(plane) for plane in lr],
                       lambda images: [interpolate(image, method) for image in images],
                       lambda images: np.stack([np.asarray(image) for image in images]))
    return make


def peer_backend(name: str, peers_dir: Path) -> Callable[[int], Backend]:
    filename, algorithm = PEERS[name]

    def make(threads: int) -> Backend:
        cv2 = _cv2()
        if not hasattr(cv2, "dnn_superres"):
            raise Skipped("cv2.dnn_superres is missing: install opencv-contrib-python-headless, "
                          "not opencv-python-headless")
        path = peers_dir / filename
        if not path.is_file():
            raise Skipped(f"peer weights {path} not found")
        cv2.setNumThreads(threads)
        sr = cv2.dnn_superres.DnnSuperResImpl_create()
        sr.readModel(str(path))
        sr.setModel(algorithm, 2)
        # dnn_superres takes BGR and runs these models on its luma; a gray face is its own luma.
        return Backend(name, lambda lr: [cv2.cvtColor(plane, cv2.COLOR_GRAY2BGR) for plane in lr],
                       lambda images: [sr.upsample(image) for image in images],
                       lambda images: np.stack([cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) for image in images]))
    return make


def backend_specs(fp32_model: Path, int8_model: Path, peers_dir: Path,
                  extra_models: tuple[tuple[str, Path], ...] = ()) -> list[BackendSpec]:
    """Every backend the benchmark compares, in table order. ``extra_models`` are (label, file) of
    other enhance-edge models, each run by onnxruntime as ``ort-<label>``."""
    # The main int8 backends count the fp32 file's convolutions: the same as their QDQ graph's, and
    # the fp32 file is the one a run always has.
    return [
        BackendSpec("pytorch-fp32", "enhance-edge", "fp32", torch_backend(fp32_model), fp32_model),
        BackendSpec("ort-fp32", "enhance-edge", "fp32", ort_backend("ort-fp32", fp32_model), fp32_model),
        BackendSpec("ort-int8", "enhance-edge", "int8", ort_backend("ort-int8", int8_model), fp32_model),
        BackendSpec("opencv-dnn-fp32", "enhance-edge", "fp32", opencv_dnn_backend("opencv-dnn-fp32", fp32_model),
                    fp32_model),
        BackendSpec("opencv-dnn-int8", "enhance-edge", "int8", opencv_dnn_backend("opencv-dnn-int8", int8_model),
                    fp32_model),
        *(BackendSpec(f"ort-{label}", "enhance-edge", onnx_metadata(path).get("precision", "fp32"),
                      ort_backend(f"ort-{label}", path), path) for label, path in extra_models),
        *(BackendSpec(name, "peer", "fp32", peer_backend(name, peers_dir)) for name in PEERS),
        BackendSpec("pillow-bicubic", "interpolation", "uint8", pillow_backend("bicubic")),
        BackendSpec("pillow-lanczos", "interpolation", "uint8", pillow_backend("lanczos")),
    ]
