"""The single-file model: the conditioned generator and its estimator joined in one graph."""

import dataclasses

import numpy as np
import onnx
import onnxruntime as ort
import torch

from enhance_edge.export.graph import StrengthCalibration
from enhance_edge.export.onnx_export import export_generator, to_onnx_model
from enhance_edge.export.quantize import runtime_graph
from enhance_edge.train.config import EstimatorConfig, GeneratorConfig
from enhance_edge.train.networks import DegradationEstimator, Generator


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_fed_only_its_image_the_file_estimates_its_strength(tiny_conditioned):
    generator, estimator = tiny_conditioned
    session = _session(to_onnx_model(generator, estimator))
    x = np.random.default_rng(0).random((2, 1, 13, 17), dtype=np.float32)
    out, used = session.run(None, {"input": x})
    with torch.no_grad():
        level = estimator(torch.from_numpy(x))
        expected = generator(torch.from_numpy(x), level).numpy()
    np.testing.assert_allclose(used, level.numpy(), atol=1e-6)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_a_given_strength_is_clipped_to_the_trained_range_and_skips_the_estimator(tiny_conditioned):
    generator, estimator = tiny_conditioned
    model = to_onnx_model(generator, estimator)
    session = _session(model)
    x = np.random.default_rng(1).random((3, 1, 8, 9), dtype=np.float32)
    for given, level in ((0.4, 0.4), (1.7, 1.0), (0.0, 0.0)):
        out, used = session.run(None, {"input": x, "strength": np.array([given], np.float32)})
        np.testing.assert_array_equal(used, np.full((3, 1, 1, 1), level, np.float32))
        with torch.no_grad():
            expected = generator(torch.from_numpy(x), torch.full((3, 1, 1, 1), level)).numpy()
        np.testing.assert_allclose(out, expected, atol=1e-5)
    # The estimator's convolutions live in the If's "auto" branch alone: a given strength never runs them.
    [choose] = [node for node in model.graph.node if node.op_type == "If"]
    branches = {attribute.name: attribute.g for attribute in choose.attribute}
    assert any(node.op_type == "Conv" for node in branches["then_branch"].node)
    assert not any(node.op_type == "Conv" for node in branches["else_branch"].node)


def test_the_estimators_weights_are_its_branchs_own_and_run_in_blocked_layout(tmp_path):
    """onnxruntime lays an If branch's convolutions out in blocks (NCHWc, x86) only when their
    weights are the branch's own initializers: read from the outer graph, the bundled estimator
    took twice the time. (A generator of 16 channels: narrower ones turn the blocked layout off.)"""
    generator = Generator(GeneratorConfig(channels=16, residual_blocks=0, body="rep", rep_convs=1, skip="bicubic",
                                          condition="degradation")).eval()
    estimator = DegradationEstimator(EstimatorConfig(channels=16, first_stride=2)).eval()  # the bundled width
    path = tmp_path / "wide-estimator.onnx"
    export_generator(generator, path, {"trained_on": "nothing (test fixture)"}, estimator=estimator)

    def auto_branch(model: onnx.ModelProto) -> onnx.GraphProto:
        [choose] = [node for node in model.graph.node if node.op_type == "If"]
        return next(attribute.g for attribute in choose.attribute if attribute.name == "then_branch")

    model = onnx.load(str(path))
    own = {tensor.name for tensor in auto_branch(model).initializer}
    assert {f"estimator/{name}" for name in estimator.state_dict()} <= own
    assert not any(tensor.name.startswith("estimator/") for tensor in model.graph.initializer)
    blocked = [node for node in auto_branch(runtime_graph(path, 2)).node
               if node.op_type == "Conv" and node.domain == "com.microsoft.nchwc"]
    assert len(blocked) >= 3  # the 16-channel convolutions (the last one's single output channel may stay plain)


def test_strength_is_the_only_optional_input(tiny_conditioned):
    """The file alone gives the CLI's pixels: nothing but ``strength`` (default -1, "auto") can be fed."""
    generator, estimator = tiny_conditioned
    session = _session(to_onnx_model(generator, estimator))
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [(i.name, i.shape) for i in session.get_overridable_initializers()] == [("strength", [1])]


def test_the_rep_body_ships_as_plain_3x3_convolutions(tiny_conditioned):
    """Folded at export: no 1x1 branch, no identity Add, one 3x3 kernel per layer (the bicubic skip's
    fixed kernel is a constant); the level plane is the head's second input channel."""
    generator, estimator = tiny_conditioned
    graph = to_onnx_model(generator, estimator).graph
    weights = {t.name: tuple(t.dims) for t in graph.initializer}
    kernels = [weights[node.input[1]] for node in graph.node if node.op_type == "Conv" and node.input[1] in weights]
    assert [k[2:] for k in kernels] == [(3, 3)] * 4  # head, 2 body layers, tail
    assert kernels[0] == (4, 2, 3, 3)  # the head reads the image and the level plane
    assert [node.op_type for node in graph.node].count("Add") == 1  # the skip's, no identity branch


def test_auto_reads_the_strength_through_its_calibration(tiny_conditioned):
    generator, estimator = tiny_conditioned
    x = np.random.default_rng(3).random((4, 1, 10, 11), dtype=np.float32) * np.float32([0.2, 1, 0.5, 0.8])[:, None,
                                                                                                           None, None]
    with torch.no_grad():
        reading = estimator(torch.from_numpy(x)).numpy()
    cut = float(np.median(reading))  # half the images read below it: a clean image's strength, 0
    calibration = StrengthCalibration(zero_below=cut, gain=1.5)
    _, used = _session(to_onnx_model(generator, estimator, calibration)).run(None, {"input": x})
    expected = np.where(reading >= cut, np.minimum(reading * 1.5, 1.0), 0.0)
    np.testing.assert_allclose(used, expected, atol=1e-6)
    assert (used == 0).sum() == 2


def test_the_calibration_is_chosen_on_the_runs_validation_faces(tiny_conditioned, eight_subjects):
    from enhance_edge.eval.degradation import DegradationConfig
    from enhance_edge.export.calibrate import GAINS, ZERO_BELOW, choose_calibration
    from enhance_edge.train.config import RunConfig, TrainConfig

    generator, estimator = tiny_conditioned
    config = RunConfig(generator.config, train=TrainConfig(hr_size=(24, 28)), degradation=DegradationConfig())
    calibration, table = choose_calibration(generator, estimator, config, eight_subjects)
    assert calibration.zero_below in ZERO_BELOW and calibration.gain in GAINS
    assert table["chosen"] >= table["uncalibrated"] and table["faces"] == 6  # person4 (the seed-0 split)
    # the degraded draw is the same whatever share of clean pairs the run trained on
    mostly_clean = dataclasses.replace(config, degradation=DegradationConfig(clean_share=0.9))
    assert choose_calibration(generator, estimator, mostly_clean, eight_subjects) == (calibration, table)
