"""Shared fixtures: tiny synthetic faces, a tiny generator and its ONNX export.

Everything here is small enough that the whole suite runs in minutes on 2 CPU cores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DATA = Path(__file__).parent / "data"


def smooth_image(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A face-like smooth 8-bit image: a few Gaussian blobs on a gradient."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = 0.3 + 0.4 * x / width
    for _ in range(4):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(3, width / 2)
        image += rng.uniform(-0.3, 0.3) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r**2))
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="session")
def yale_test_faces() -> list[Path]:
    """12 real faces of the Yale test subjects (tests/data/README.md), never trained on."""
    return sorted((DATA / "yale_test").glob("*.png"))


@pytest.fixture(scope="session")
def face_folder(tmp_path_factory) -> Path:
    """4 subjects x 3 images of 42x48, one sub-folder per subject, plus a non-image file."""
    root = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    for subject in range(4):
        folder = root / f"person{subject}"
        folder.mkdir()
        for index in range(3):
            Image.fromarray(smooth_image(rng, 42, 48)).save(folder / f"img{index}.png")
    (root / "README.txt").write_text("not an image")
    return root


@pytest.fixture(scope="session")
def tiny_generator_config():
    from enhance_edge.train.config import GeneratorConfig

    return GeneratorConfig(channels=4, residual_blocks=1, skip="bicubic")


@pytest.fixture(scope="session")
def tiny_generator(tiny_generator_config):
    import torch

    from enhance_edge.train.networks import Generator

    torch.manual_seed(0)
    return Generator(tiny_generator_config).eval()


@pytest.fixture(scope="session")
def tiny_conditioned():
    """A tiny "rep" generator conditioned on the degradation level, its weights drawn afresh (its
    tail starts at zero, which would make every strength give bicubic upsampling), and its estimator."""
    import torch

    from enhance_edge.train.config import EstimatorConfig, GeneratorConfig
    from enhance_edge.train.networks import DegradationEstimator, Generator

    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(channels=4, residual_blocks=0, body="rep", rep_convs=2, skip="bicubic",
                                          condition="degradation"))
    with torch.no_grad():
        for parameter in generator.parameters():
            parameter.normal_(0, 0.3)
    return generator.eval(), DegradationEstimator(EstimatorConfig(channels=2, first_stride=2)).eval()


@pytest.fixture(scope="session")
def tiny_conditioned_onnx(tmp_path_factory, tiny_conditioned) -> Path:
    """``tiny_conditioned`` exported through the real export path: one file, its estimator in the graph."""
    from enhance_edge.export.onnx_export import export_generator

    generator, estimator = tiny_conditioned
    path = tmp_path_factory.mktemp("model") / "tiny-conditioned.onnx"
    export_generator(generator, path, {"trained_on": "nothing (test fixture)"}, estimator=estimator)
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory, tiny_generator) -> Path:
    """A tiny random-weight generator exported through the real export path."""
    from enhance_edge.export.onnx_export import export_generator

    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    export_generator(tiny_generator, path, {"trained_on": "nothing (test fixture)"})
    return path


@pytest.fixture(scope="session")
def tiny_x4_onnx(tmp_path_factory) -> Path:
    """A tiny random-weight x4 generator exported through the real export path."""
    import torch

    from enhance_edge.export.onnx_export import export_generator
    from enhance_edge.train.config import GeneratorConfig
    from enhance_edge.train.networks import Generator

    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(channels=4, residual_blocks=1, skip="bicubic", scale=4)).eval()
    path = tmp_path_factory.mktemp("model") / "tiny-x4.onnx"
    export_generator(generator, path, {"trained_on": "nothing (test fixture)"})
    return path


def with_int8_metadata(fp32_path, int8_path, weight_bits=None):
    """An "int8" stand-in for ``fp32_path`` at ``int8_path``: its weights nudged (so its outputs differ
    from the fp32 file's) and its metadata stating int8 (and ``weight_bits``, where given)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(fp32_path))
    for index, tensor in enumerate(model.graph.initializer):
        values = numpy_helper.to_array(tensor)
        if values.dtype == np.float32 and values.ndim == 4:  # conv weights
            model.graph.initializer[index].CopyFrom(numpy_helper.from_array(values * np.float32(1.05), tensor.name))
    metadata = {p.key: p.value for p in model.metadata_props}
    metadata["precision"] = "int8"
    if weight_bits is not None:
        metadata["int8_weight_bits"] = str(weight_bits)
    helper.set_model_props(model, metadata)
    onnx.save(model, str(int8_path))
    return int8_path
