"""The enhance-edge group and the evaluate command through click's CliRunner (the commands of train/,
export/ and benchmarks/ are tested beside their code)."""

import json

from click.testing import CliRunner

from enhance_edge.apps.cli import main


def test_help_lists_the_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("upscale", "export", "train", "evaluate", "plots", "data"):
        assert command in result.output


def test_models_help_suggests_only_what_runs():
    result = CliRunner().invoke(main, ["models", "--help"])
    assert result.exit_code == 0
    assert "enhance-edge upscale face.png --model fast\n" in result.output and "int8" not in result.output


def test_evaluate_scores_model_and_baselines_per_split(face_folder, tiny_onnx):
    result = CliRunner().invoke(main, ["evaluate", "--data", str(face_folder), "--model", str(tiny_onnx),
                                       "--hr-size", "native", "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert set(scores) == {"train", "validation", "test"}
    assert sum(s["images"] for s in scores.values()) == 12
    for split in scores.values():
        assert set(split) == {"images", "model", "bicubic", "lanczos", "skimage-order3"}
        assert 10 < split["lanczos"]["psnr"] < 80 and 0 < split["lanczos"]["ssim"] <= 1


def test_evaluate_rejects_a_bad_hr_size(face_folder):
    result = CliRunner().invoke(main, ["evaluate", "--data", str(face_folder), "--hr-size", "big"])
    assert result.exit_code == 2 and "expected WIDTHxHEIGHT or 'native', got 'big'" in result.output
