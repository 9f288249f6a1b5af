import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from click.testing import CliRunner

from enhance_edge.apps.cli import main
from enhance_edge.errors import CheckpointError, ModelError, ParityError
from enhance_edge.export.onnx_export import export_checkpoint, export_generator, model_metadata, parity, to_onnx_model
from enhance_edge.core.model import DISABLED_OPTIMIZERS_KEY, open_session
from enhance_edge.train import checkpoint
from enhance_edge.train.config import GeneratorConfig, RunConfig
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
    # What tiling needs: 1 residual block and the bicubic skip see 4 pixels around; 4 channels at x2.
    assert (metadata["receptive_radius"], metadata["working_bytes_per_pixel"]) == ("4", str(4 * (7 * 4 + 2 * 4 + 2)))
    assert metadata["trained_on"] == "nothing (test fixture)"
    _, info = open_session(tiny_onnx)
    assert info.scale == 2


@pytest.mark.parametrize("channels, disabled", [(4, "NchwcTransformer"), (20, "NchwcTransformer"), (16, None),
                                                (32, None)])
def test_models_whose_width_is_not_whole_nchwc_blocks_turn_the_layout_transform_off(channels, disabled):
    generator = Generator(GeneratorConfig(channels=channels, residual_blocks=1))
    assert model_metadata(generator, {}).get(DISABLED_OPTIMIZERS_KEY) == disabled


def test_export_graph_is_plain_convolutions_and_depth_to_space(tiny_generator):
    ops = {node.op_type for node in to_onnx_model(tiny_generator).graph.node}
    assert "DepthToSpace" in ops and "Resize" not in ops


def test_parity_failure_is_an_error_and_writes_nothing(tmp_path, tiny_generator):
    class Drifted(torch.nn.Module):
        """The exported graph is the generator's, but 'PyTorch' answers with an offset."""

        config = tiny_generator.config

        def forward(self, x):
            return tiny_generator(x) + 1e-3

    onnx_bytes = to_onnx_model(tiny_generator).SerializeToString()
    assert max(r["max_abs_diff"] for r in parity(onnx_bytes, Drifted())) > 1e-4
    target = tmp_path / "model.onnx"
    with pytest.raises(ParityError, match="nothing was written"):
        export_generator(tiny_generator, target, tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def seed1_checkpoint(tmp_path_factory, tiny_generator):
    """A checkpoint trained (so its config says) with --seed 1 at HR 24x28."""
    from enhance_edge.train import checkpoint
    from enhance_edge.train.config import RunConfig, TrainConfig

    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    config = RunConfig(generator=tiny_generator.config, train=TrainConfig(seed=1, hr_size=(24, 28)))
    checkpoint.save(path, {"config": config.to_dict(), "epoch": 1, "data": {"folder": "eight"},
                           "generator": tiny_generator.state_dict()})
    return path


def test_score_on_scores_the_subjects_training_held_out_at_its_hr_size(tmp_path, seed1_checkpoint, eight_subjects):
    from click.testing import CliRunner

    from enhance_edge.apps.cli import main
    from enhance_edge.eval.evaluate import evaluate_folder
    from enhance_edge.core.upscaler import Upscaler

    out = tmp_path / "model.onnx"
    result = CliRunner().invoke(main, ["export", str(seed1_checkpoint), "-o", str(out),
                                       "--score-on", str(eight_subjects)])
    assert result.exit_code == 0, result.output
    test = json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}["test"])
    assert test["images"] == 8  # person6, seed 1's test subject (seed 0 would score person1, a training subject)
    expected = evaluate_folder(eight_subjects, Upscaler(out), (24, 28), ("test",), seed=1)["test"]
    assert test["psnr"] == expected["model"]["psnr"] and test["baselines"]["bicubic"] == expected["bicubic"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_a_failed_score_on_leaves_no_model_behind(tmp_path, seed1_checkpoint, eight_subjects):
    from click.testing import CliRunner

    from enhance_edge.apps.cli import main

    few = tmp_path / "few"  # two subjects: no test split
    for subject in ("person0", "person1"):
        shutil.copytree(eight_subjects / subject, few / subject)
    broken = tmp_path / "broken"
    shutil.copytree(eight_subjects, broken)
    (broken / "person6" / "0.png").write_bytes((broken / "person6" / "0.png").read_bytes()[:100])
    for folder, message in ((few, "none of the splits ['test'] exist"), (broken, "corrupt or truncated image")):
        out = tmp_path / "out" / "model.onnx"
        result = CliRunner().invoke(main, ["export", str(seed1_checkpoint), "-o", str(out), "--score-on", str(folder)])
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
        assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_an_unwritable_output_is_a_model_error_and_writes_nothing(tmp_path, tiny_generator):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ModelError, match=f"^{tmp_path / 'file' / 'model.onnx'}: cannot write"):
        export_generator(tiny_generator, tmp_path / "file" / "model.onnx")
    assert [path.name for path in tmp_path.iterdir()] == ["file"]


def test_a_checkpoint_with_an_unusable_config_or_weights_is_one_clear_line(tmp_path, tiny_generator):
    config = RunConfig(generator=tiny_generator.config).to_dict()
    newer, misshapen = tmp_path / "newer.pt", tmp_path / "misshapen.pt"
    checkpoint.save(newer, {"config": {**config, "train": {**config["train"], "wings": 2}},
                            "generator": tiny_generator.state_dict()})
    checkpoint.save(misshapen, {"config": RunConfig(GeneratorConfig(channels=8, residual_blocks=1)).to_dict(),
                                "generator": tiny_generator.state_dict()})
    with pytest.raises(CheckpointError, match="holds generator weights that do not fit its config: size mismatch"):
        export_checkpoint(misshapen, tmp_path / "model.onnx")
    result = CliRunner().invoke(main, ["export", str(newer), "-o", str(tmp_path / "model.onnx")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith(f"error: '{newer}' holds an unusable config: unknown TrainConfig keys ['wings']")
    assert not (tmp_path / "model.onnx").exists()


@pytest.fixture(scope="module")
def conditioned_checkpoint(tmp_path_factory, tiny_conditioned):
    """``tiny_conditioned``'s generator in a checkpoint beside an estimator of its own (3 channels wide)."""
    from enhance_edge.eval.degradation import DegradationConfig
    from enhance_edge.train.config import EstimatorConfig
    from enhance_edge.train.networks import DegradationEstimator

    generator, _ = tiny_conditioned
    torch.manual_seed(2)
    own = DegradationEstimator(EstimatorConfig(channels=3, first_stride=2))
    path = tmp_path_factory.mktemp("ckpt") / "conditioned.pt"
    checkpoint.save(path, {"config": RunConfig(generator.config, degradation=DegradationConfig(),
                                               estimator=own.config).to_dict(),
                           "epoch": 1, "generator": generator.state_dict(), "estimator": own.state_dict()})
    return path


def _strengths_used(model_path, x):
    session, _ = open_session(model_path)
    return session.run(["strength_used"], {"input": x})[0]


def test_estimator_from_puts_another_models_estimator_in_the_graph(tmp_path, conditioned_checkpoint,
                                                                  tiny_conditioned_onnx):
    x = np.random.default_rng(0).random((2, 1, 40, 32), dtype=np.float32)
    own, grafted = tmp_path / "own.onnx", tmp_path / "grafted.onnx"
    export_checkpoint(conditioned_checkpoint, own)
    result = CliRunner().invoke(main, ["export", str(conditioned_checkpoint), "-o", str(grafted),
                                       "--estimator-from", str(tiny_conditioned_onnx)])
    assert result.exit_code == 0, result.output
    source_reads = _strengths_used(tiny_conditioned_onnx, x)
    assert not np.allclose(_strengths_used(own, x), source_reads, atol=1e-3)
    np.testing.assert_allclose(_strengths_used(grafted, x), source_reads, atol=1e-6)
    metadata = {p.key: p.value for p in onnx.load(str(grafted)).metadata_props}
    assert metadata["estimator_from"] == str(tiny_conditioned_onnx)
    assert json.loads(metadata["estimator_config"]) == {"channels": 2, "first_stride": 2}


def test_estimator_from_needs_a_conditioned_generator_and_a_source_with_an_estimator(
        tmp_path, seed1_checkpoint, conditioned_checkpoint, tiny_onnx, tiny_conditioned_onnx):
    with pytest.raises(ModelError, match="best.pt'.s generator is not conditioned on the degradation level: it has "
                                         "no estimator for --estimator-from '.*tiny-conditioned.onnx' to replace"):
        export_checkpoint(seed1_checkpoint, tmp_path / "model.onnx", estimator_from=tiny_conditioned_onnx)
    result = CliRunner().invoke(main, ["export", str(conditioned_checkpoint), "-o", str(tmp_path / "model.onnx"),
                                       "--estimator-from", str(tiny_onnx)])
    assert result.exit_code == 1 and "tiny.onnx' holds no degradation estimator" in result.output
    assert "Traceback" not in result.output and list(tmp_path.iterdir()) == []
