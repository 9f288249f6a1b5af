from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch

from enhance_edge.errors import CheckpointError
from enhance_edge.core.model import bundled_model_path
from enhance_edge.train.config import GeneratorConfig
from enhance_edge.train.warm_start import load_estimator, load_warm_start


def test_a_conditioned_generator_starts_from_a_released_model_computing_what_it_did(tiny_onnx, tiny_generator):
    conditioned = GeneratorConfig(channels=4, residual_blocks=1, skip="bicubic", condition="degradation")
    generator, estimator = load_warm_start(str(tiny_onnx), conditioned)
    assert estimator is None  # an unconditioned model has none: the run trains one from scratch
    x = torch.from_numpy(np.random.default_rng(0).random((2, 1, 9, 7), dtype=np.float32))
    with torch.no_grad():
        expected = tiny_generator(x)
        for level in (0.0, 0.6, 1.0):  # the level biases start at zero: every strength is the old model
            torch.testing.assert_close(generator.eval()(x, torch.full((2, 1, 1, 1), level)), expected)


def test_a_conditioned_rep_generator_starts_from_an_unconditioned_run_computing_what_it_did(tmp_path,
                                                                                           tiny_conditioned):
    from enhance_edge.train import checkpoint
    from enhance_edge.train.config import RunConfig
    from enhance_edge.train.networks import Generator

    conditioned = tiny_conditioned[0].config
    torch.manual_seed(1)
    source = Generator(replace(conditioned, condition="none"))
    with torch.no_grad():
        for parameter in source.parameters():
            parameter.normal_(0, 0.3)
    path = tmp_path / "clean-run.pt"
    checkpoint.save(path, {"config": RunConfig(source.config).to_dict(), "generator": source.state_dict()})
    generator, estimator = load_warm_start(str(path), conditioned)
    assert estimator is None  # the run trains one from scratch
    x = torch.from_numpy(np.random.default_rng(0).random((2, 1, 9, 7), dtype=np.float32))
    with torch.no_grad():  # the head's weights on the level plane start at zero: every strength is the old model
        for level in (0.0, 0.6, 1.0):
            torch.testing.assert_close(generator.eval()(x, torch.full((2, 1, 1, 1), level)), source.eval()(x))


def test_a_released_rep_model_unfolds_into_what_it_computed_and_hands_on_its_estimator(tiny_conditioned_onnx,
                                                                                      tiny_conditioned):
    source, source_estimator = tiny_conditioned
    generator, estimator = load_warm_start(str(tiny_conditioned_onnx), source.config)
    x = torch.from_numpy(np.random.default_rng(0).random((2, 1, 9, 7), dtype=np.float32))
    level = torch.tensor([0.1, 0.8]).reshape(2, 1, 1, 1)
    with torch.no_grad():  # the file holds each layer folded: it becomes the 3x3 branch, the others zero
        torch.testing.assert_close(generator.eval()(x, level), source(x, level), atol=1e-5, rtol=1e-5)
    assert estimator.keys() == source_estimator.state_dict().keys()
    for key, value in source_estimator.state_dict().items():
        torch.testing.assert_close(estimator[key], value)


@pytest.mark.parametrize("asked, difference", [
    ({"channels": 8}, "channels: 4 -> 8"),
    ({"skip": "none"}, "skip: 'bicubic' -> 'none'"),
])
def test_a_released_model_of_another_design_is_refused(tiny_onnx, asked, difference):
    config = GeneratorConfig(**{"channels": 4, "residual_blocks": 1, "skip": "bicubic", **asked})
    with pytest.raises(CheckpointError, match=f"its generator differs from this run's \\({difference}\\)"):
        load_warm_start(str(tiny_onnx), config)


def test_the_condition_cannot_be_dropped(tiny_conditioned_onnx):
    with pytest.raises(CheckpointError, match="condition: 'degradation' -> 'none'"):
        load_warm_start(str(tiny_conditioned_onnx),
                        GeneratorConfig(channels=4, residual_blocks=0, body="rep", rep_convs=2, skip="bicubic"))


def test_bundled_names_start_from_their_fp32_file_and_int8_files_are_refused(tmp_path):
    fast = GeneratorConfig(channels=16, residual_blocks=0, body="rep", rep_convs=8, skip="bicubic",
                           condition="degradation")
    generator, estimator = load_warm_start("fast", fast)
    assert generator.config.channels == 16 and estimator is not None
    model = onnx.load(str(bundled_model_path("fast", "fp32")))
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, "precision": "int8"})
    int8 = tmp_path / "fast-int8.onnx"
    onnx.save(model, int8)
    with pytest.raises(CheckpointError, match="it is an int8 model; start from its fp32 file"):
        load_warm_start(str(int8), fast)


def test_a_file_that_is_not_a_model_is_one_clear_error(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("not a model")
    with pytest.raises(CheckpointError, match="cannot start from .*notes.onnx"):
        load_warm_start(str(path), GeneratorConfig())


def test_a_x4_generator_starts_from_a_x2_ones_features_with_a_fresh_tail(tiny_onnx, tiny_generator):
    config = GeneratorConfig(channels=4, residual_blocks=1, skip="bicubic", scale=4)
    generator, _ = load_warm_start(str(tiny_onnx), config)
    weights = generator.state_dict()
    for key, value in tiny_generator.state_dict().items():
        if key.startswith("tail."):
            assert weights[key].shape[0] == 16  # the x4 phases, initialised afresh
        else:
            torch.testing.assert_close(weights[key], value)


def test_a_deeper_rep_generator_starts_from_a_shallower_one_computing_what_it_did(tiny_conditioned_onnx,
                                                                                   tiny_conditioned):
    source, _ = tiny_conditioned
    deeper = replace(source.config, rep_convs=source.config.rep_convs + 2)
    generator, estimator = load_warm_start(str(tiny_conditioned_onnx), deeper)
    assert len(generator.body) == source.config.rep_convs + 2 and estimator is not None
    x = torch.from_numpy(np.random.default_rng(0).random((2, 1, 9, 7), dtype=np.float32))
    level = torch.tensor([0.1, 0.8]).reshape(2, 1, 1, 1)
    with torch.no_grad():  # the new layers start as the identity on the ReLU's non-negative features
        torch.testing.assert_close(generator.eval()(x, level), source(x, level), atol=1e-5, rtol=1e-5)


def test_a_rep_generator_cannot_start_from_a_deeper_one(tiny_conditioned_onnx, tiny_conditioned):
    source, _ = tiny_conditioned
    shallower = replace(source.config, rep_convs=source.config.rep_convs - 1)
    with pytest.raises(CheckpointError, match=f"rep_convs: {source.config.rep_convs} -> {shallower.rep_convs}"):
        load_warm_start(str(tiny_conditioned_onnx), shallower)


def test_an_estimator_is_taken_from_a_model_file_or_a_checkpoint_with_its_own_config(tmp_path, tiny_conditioned_onnx,
                                                                                   tiny_conditioned):
    from enhance_edge.eval.degradation import DegradationConfig
    from enhance_edge.train import checkpoint
    from enhance_edge.train.config import EstimatorConfig, RunConfig
    from enhance_edge.train.networks import DegradationEstimator

    generator, source_estimator = tiny_conditioned
    torch.manual_seed(1)
    wider = DegradationEstimator(EstimatorConfig(channels=3)).eval()  # not the config a default RunConfig names
    path = tmp_path / "run.pt"
    checkpoint.save(path, {"config": RunConfig(generator.config, degradation=DegradationConfig(),
                                               estimator=wider.config).to_dict(),
                           "generator": generator.state_dict(), "estimator": wider.state_dict()})
    x = torch.from_numpy(np.random.default_rng(0).random((2, 1, 24, 20), dtype=np.float32))
    with torch.no_grad():
        for source, expected in ((tiny_conditioned_onnx, source_estimator), (path, wider)):
            estimator = load_estimator(source)
            assert estimator.config == expected.config and not estimator.training
            torch.testing.assert_close(estimator(x), expected(x))


def test_a_source_without_an_estimator_or_its_config_is_one_clear_error(tmp_path, tiny_onnx, tiny_conditioned_onnx):
    with pytest.raises(CheckpointError, match=r"tiny.onnx' holds no degradation estimator \(only a model "
                                              r"conditioned on the degradation level has one\)"):
        load_estimator(tiny_onnx)
    model = onnx.load(str(tiny_conditioned_onnx))
    kept = [p for p in model.metadata_props if p.key != "estimator_config"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, str(tmp_path / "unlabelled.onnx"))
    with pytest.raises(CheckpointError, match="holds estimator weights but not their config"):
        load_estimator(tmp_path / "unlabelled.onnx")
    with pytest.raises(CheckpointError, match="^cannot take the estimator of '.*fast-int8.onnx': it is an int8 "
                                              "model; take the estimator of its fp32 file$"):
        load_estimator(bundled_model_path("fast", "int8"))
