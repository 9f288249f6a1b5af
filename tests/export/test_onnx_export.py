import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from enhance_edge.errors import ParityError
from enhance_edge.export.onnx_export import export_generator, model_metadata, parity, to_onnx_bytes
from enhance_edge.model import DISABLED_OPTIMIZERS_KEY, open_session
from enhance_edge.train.config import GeneratorConfig
from enhance_edge.train.networks import Generator


@pytest.mark.parametrize("shape", [(1, 1, 56, 46), (3, 1, 17, 9), (2, 1, 1, 5), (1, 1, 64, 31)])
def test_onnxruntime_matches_pytorch_on_random_sizes(tiny_onnx, tiny_generator, shape):
    session = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    with torch.no_grad():
        expected = tiny_generator(torch.from_numpy(x)).numpy()
    actual = session.run(None, {"input": x})[0]
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() <= 1e-4


def test_exported_model_has_dynamic_axes_and_metadata(tiny_onnx, tiny_generator_config):
    model = onnx.load(str(tiny_onnx))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, "height", "width"]
    metadata = {p.key: p.value for p in model.metadata_props}
    assert metadata["scale"] == "2" and metadata["channels"] == "1"
    assert metadata["value_range"] == "0,1" and metadata["layout"] == "NCHW"
    assert json.loads(metadata["generator_config"]) == tiny_generator_config.to_dict()
    assert metadata["trained_on"] == "nothing (test fixture)"
    _, info = open_session(tiny_onnx)
    assert info.scale == 2


@pytest.mark.parametrize("channels, disabled", [(4, "NchwcTransformer"), (20, "NchwcTransformer"), (16, None),
                                                (32, None)])
def test_models_whose_width_is_not_whole_nchwc_blocks_turn_the_layout_transform_off(channels, disabled):
    generator = Generator(GeneratorConfig(channels=channels, residual_blocks=1))
    assert model_metadata(generator, {}).get(DISABLED_OPTIMIZERS_KEY) == disabled


def test_export_graph_is_plain_convolutions_and_depth_to_space(tiny_generator):
    ops = {node.op_type for node in onnx.load_from_string(to_onnx_bytes(tiny_generator)).graph.node}
    assert "DepthToSpace" in ops and "Resize" not in ops


def test_parity_failure_is_an_error_and_writes_nothing(tmp_path, tiny_generator):
    class Drifted(torch.nn.Module):
        """The exported graph is the generator's, but 'PyTorch' answers with an offset."""

        config = tiny_generator.config

        def forward(self, x):
            return tiny_generator(x) + 1e-3

    onnx_bytes = to_onnx_bytes(tiny_generator)
    assert max(r["max_abs_diff"] for r in parity(onnx_bytes, Drifted())) > 1e-4
    target = tmp_path / "model.onnx"
    with pytest.raises(ParityError, match="nothing was written"):
        export_generator(tiny_generator, target, tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []
