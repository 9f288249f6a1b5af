import numpy as np
import pytest
import torch

from enhance_edge.errors import ModelError
from enhance_edge.export.onnx_export import export_generator
from enhance_edge.model import bundled_model_path, open_session
from enhance_edge.train.config import GeneratorConfig
from enhance_edge.train.data import teacher_outputs, teacher_path
from enhance_edge.train.networks import Generator


def test_teacher_outputs_are_the_onnx_models_clipped_to_the_unit_range(tiny_onnx):
    lr = torch.from_numpy(np.random.default_rng(0).random((3, 1, 7, 5), dtype=np.float32))
    session, _ = open_session(tiny_onnx, "cpu", 1)  # as the runtime runs it, so the sums agree bit for bit
    raw = session.run(None, {"input": lr.numpy()})[0]
    assert raw.min() < 0 or raw.max() > 1  # a random-weight model: clipping really happens
    taught = teacher_outputs(str(tiny_onnx), lr, scale=2, threads=1)
    assert taught.shape == (3, 1, 14, 10) and taught.dtype == torch.float32
    np.testing.assert_array_equal(taught.numpy(), np.clip(raw, 0, 1))


def test_a_teacher_of_another_scale_is_refused(tmp_path):
    path = tmp_path / "x3.onnx"
    export_generator(Generator(GeneratorConfig(channels=2, residual_blocks=0, scale=3)), path)
    with pytest.raises(ModelError, match=r"upscales x3, the generator trained x2"):
        teacher_outputs(str(path), torch.zeros(1, 1, 4, 4), scale=2)


def test_a_bundled_teacher_is_its_fp32_file_on_every_cpu(tiny_onnx):
    # "auto" would pick the int8 file on CPUs that run it exactly: the targets would then depend on the CPU.
    assert teacher_path("default") == bundled_model_path("default", "fp32")
    assert teacher_path(str(tiny_onnx)) == tiny_onnx
