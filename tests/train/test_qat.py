import numpy as np
import onnx
import pytest
import torch

from enhance_edge.export.onnx_export import export_generator
from enhance_edge.export.quantize import Recipe, quantize_with
from enhance_edge.train import qat
from enhance_edge.train.config import GeneratorConfig
from enhance_edge.train.networks import Generator


TINY = {"residual": GeneratorConfig(channels=4, residual_blocks=2, skip="bicubic"),
        "rep": GeneratorConfig(channels=4, residual_blocks=0, body="rep", rep_convs=2, skip="bicubic")}
# QuantizeLinear nodes of the int8 graph past the input. Report's body: head conv and SiLU 3, five per
# block, final SiLU 2; rep: each ReLU-fused convolution's output but the float tail's.
ROUNDED = {"residual": 15, "rep": 3}


def tiny_generator(body: str = "residual") -> Generator:
    torch.manual_seed(0)
    generator = Generator(TINY[body])
    for parameter in generator.tail.parameters():  # rep's tail starts at zero: give it something to pass on
        torch.nn.init.normal_(parameter, std=0.1)
    return generator


def test_rounding_follows_the_training_range_and_is_frozen_in_eval():
    rounding = qat.ActivationFakeQuant()
    rounding(torch.linspace(-1.0, 3.0, 100))  # training mode: first batch sets the range
    assert (float(rounding.low), float(rounding.high)) == (-1.0, 3.0)
    rounding.eval()
    x = torch.linspace(-2.0, 5.0, 1000)
    y = rounding(x)
    assert (float(rounding.low), float(rounding.high)) == (-1.0, 3.0)
    scale = 4.0 / 255  # the zero point is an integer, so the grid may shift by under one step
    assert y.min() >= -1.0 - scale and y.max() <= 3.0 + scale  # clipped to the range
    assert len(torch.unique(y)) <= 256
    assert torch.allclose(y[(x > -1) & (x < 3)], x[(x > -1) & (x < 3)], atol=scale / 2 + 1e-6)


@pytest.mark.parametrize("body", sorted(TINY))
def test_prepare_rounds_activations_and_strip_gives_the_float_network_back(body):
    generator = tiny_generator(body)
    x = torch.rand(2, 1, 9, 7)
    with torch.no_grad():
        expected = generator.eval()(x)
        prepared = qat.prepare(generator, weight_bits=8).train()
        prepared(x)  # observe ranges
        simulated = prepared.eval()(x)
        plain = qat.strip(prepared).eval()
        assert not torch.equal(simulated, expected)
        assert torch.allclose(simulated, expected, atol=0.05)
        if body == "rep":  # its folded kernels on the int8 grid training rounded them to
            assert not torch.equal(plain(x), expected)
            assert torch.allclose(plain(x), expected, atol=0.05)
        else:
            torch.testing.assert_close(plain(x), expected)
    assert set(plain.state_dict()) == set(Generator(generator.config).state_dict())


@pytest.mark.parametrize("bits, limit", [(8, 127), (7, 64)])
def test_strip_puts_each_folded_kernel_on_the_grid_training_rounded_it_to(bits, limit):
    prepared = qat.prepare(tiny_generator("rep"), weight_bits=bits)
    plain = qat.strip(prepared)
    for conv in (plain.head, *(layer[0] for layer in plain.body)):
        kernel, _ = conv.folded()
        steps = kernel.detach().flatten(1) / (kernel.detach().abs().flatten(1).amax(1, keepdim=True) / limit)
        torch.testing.assert_close(steps, torch.round(steps), atol=1e-4, rtol=0)
        assert steps.abs().max() == pytest.approx(limit)
    # and the rounded kernel is the prepared network's: stripping again changes nothing
    x = torch.rand(1, 1, 9, 7)
    with torch.no_grad():
        expected = plain(x)
        torch.testing.assert_close(qat.strip(qat.prepare(plain, weight_bits=bits))(x), expected)


@pytest.mark.parametrize("body", sorted(TINY))
def test_the_simulation_rounds_where_the_int8_graph_quantizes(tmp_path, body):
    """One fake quantizer per QuantizeLinear of onnxruntime's QDQ model, except the input's and its
    padded copy's for the bicubic skip (an 8-bit image is exact in uint8)."""
    generator = tiny_generator(body).eval()
    export_generator(generator, tmp_path / "fp32.onnx")
    faces = (np.random.default_rng(0).random((4, 12, 10)) * 255).astype(np.uint8)
    quantize_with(Recipe(), tmp_path / "fp32.onnx", tmp_path / "int8.onnx", faces, tmp_path / "ranges.json")
    graph = onnx.load(str(tmp_path / "int8.onnx")).graph
    producers = {output: node.op_type for node in graph.node for output in node.output}
    rounded = [n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"
               and n.input[0] != "input" and producers.get(n.input[0]) != "Pad"]
    simulated = [m for m in qat.prepare(generator, weight_bits=8).modules() if isinstance(m, qat.ActivationFakeQuant)]
    assert len(simulated) == len(rounded) == ROUNDED[body]


@pytest.mark.parametrize("limit", [127, 64])
def test_weight_rounding_is_int8_per_output_channel(limit):
    weight = torch.randn(3, 2, 3, 3) * torch.tensor([1.0, 0.01, 100.0])[:, None, None, None]
    rounded = qat.round_weights_per_channel(weight, limit)
    for channel in range(3):
        step = weight[channel].abs().max() / limit
        assert len(torch.unique(rounded[channel])) <= 2 * limit + 1
        assert torch.allclose(rounded[channel], weight[channel], atol=float(step) / 2 + 1e-9)
        assert torch.allclose(rounded[channel] / step, torch.round(rounded[channel] / step), atol=1e-3)


def test_a_prepared_rep_generator_runs_its_folded_kernels_rounded():
    generator = tiny_generator("rep")
    qat.prepare(generator, weight_bits=8)
    x = torch.rand(1, 1, 9, 7)
    with torch.no_grad():
        weight, bias = generator.head.folded()
        expected = torch.nn.functional.conv2d(x, qat.round_weights_per_channel(weight), bias, padding=1)
        torch.testing.assert_close(generator.head(x), expected)
        assert not torch.allclose(generator.head(x), torch.nn.functional.conv2d(x, weight, bias, padding=1), atol=0)
