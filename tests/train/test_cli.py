"""`enhance-edge train` and `enhance-edge plots` through click's CliRunner: what train refuses, in one
line, before training; the figures plots draws."""

import json
import time

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from enhance_edge.apps.cli import main
from enhance_edge.train import checkpoint
from enhance_edge.train.config import GeneratorConfig, RunConfig

TINY = ["--epochs", "1", "--batch-size", "3", "--channels", "4", "--blocks", "1", "--adversarial-weight", "0",
        "--threads", "1", "--max-images", "3"]


@pytest.fixture(autouse=True)
def keep_thread_count():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def run(face_folder, out, *options):
    return CliRunner().invoke(main, ["train", "--data", str(face_folder), "--out", str(out), *options])


@pytest.mark.parametrize("options, message", [
    (["--threads", "-2"], "Invalid value for '--threads': -2 is not in the range x>=1"),
    (["--threads", "0"], "Invalid value for '--threads': 0 is not in the range x>=1"),
    (["--max-images", "-1"], "Invalid value for '--max-images': -1 is not in the range x>=1"),
    (["--resume", "--overwrite"], "--resume continues the run in --out and --overwrite replaces it: give one"),
    (["--estimator-only", "--init-from", "default", "--adversarial-weight", "0"],
     "estimator_only trains the level estimator of a trained conditioned generator: it needs condition 'degradation'"),
])
def test_bad_options_are_refused_before_anything_is_written(face_folder, tmp_path, options, message):
    result = run(face_folder, tmp_path / "run", *options)
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "run").exists()


def test_a_folder_holding_a_run_needs_resume_or_overwrite(face_folder, tmp_path):
    assert run(face_folder, tmp_path, *TINY).exit_code == 0
    before = (tmp_path / "last.pt").read_bytes()
    again = run(face_folder, tmp_path, *TINY, "--seed", "1")
    assert again.exit_code == 1 and "Traceback" not in again.output
    assert again.output == (f"error: {tmp_path} already holds a run (last.pt, best.pt, metrics.jsonl): resume it "
                            f"(--resume), replace it (--overwrite) or train into another folder\n")
    assert (tmp_path / "last.pt").read_bytes() == before
    replaced = run(face_folder, tmp_path, *TINY, "--seed", "1", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert checkpoint.load(tmp_path / "last.pt")["config"]["train"]["seed"] == 1


def test_an_unwritable_output_folder_is_one_clear_line(face_folder, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    result = run(face_folder, tmp_path / "file" / "run", *TINY)
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith(f"error: {tmp_path / 'file' / 'run'}: cannot create the output")


def test_init_from_a_checkpoint_with_an_unknown_config_is_one_clear_line(face_folder, tmp_path):
    newer = tmp_path / "newer.pt"
    config = RunConfig(GeneratorConfig(channels=4, residual_blocks=1)).to_dict()
    checkpoint.save(newer, {"config": {**config, "train": {**config["train"], "wings": 2}}, "generator": {}})
    result = run(face_folder, tmp_path / "run", *TINY, "--init-from", str(newer))
    assert result.exit_code == 1 and "Traceback" not in result.output
    error = result.output.splitlines()[-1]  # after the data line
    assert error.startswith(f"error: '{newer}' holds an unusable config: unknown TrainConfig keys ['wings']")


def test_a_checkpoint_asking_for_a_million_blocks_is_one_line_at_once_in_export_and_init_from(face_folder, tmp_path):
    huge = tmp_path / "huge.pt"
    config = RunConfig(GeneratorConfig(channels=4, residual_blocks=1)).to_dict()
    checkpoint.save(huge, {"config": {**config, "generator": {**config["generator"], "residual_blocks": 10**6}},
                           "generator": {}})  # building the blocks to check the weights took minutes and 8 GB
    expected = (f"error: '{huge}' holds an unusable config: GeneratorConfig.residual_blocks must be a whole number "
                f"from 0 to 256, got 1000000")
    started = time.monotonic()
    exported = CliRunner().invoke(main, ["export", str(huge), "-o", str(tmp_path / "m.onnx")])
    trained = run(face_folder, tmp_path / "run", *TINY, "--init-from", str(huge))
    assert time.monotonic() - started < 30
    for result in (exported, trained):
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert result.output.splitlines()[-1] == expected  # init-from: after the data line


def test_init_from_a_model_file_declaring_a_huge_generator_is_one_line(face_folder, tmp_path, tiny_onnx):
    model = onnx.load(str(tiny_onnx))
    metadata = {prop.key: prop for prop in model.metadata_props}
    declared = {**json.loads(metadata["generator_config"].value), "channels": 10**6}
    metadata["generator_config"].value = json.dumps(declared)
    huge = tmp_path / "huge.onnx"
    onnx.save(model, str(huge))
    result = run(face_folder, tmp_path / "run", *TINY, "--init-from", str(huge))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.splitlines()[-1] == (f"error: cannot start from '{huge}': its metadata holds an unusable "
                                              f"generator config: GeneratorConfig.channels must be a whole number "
                                              f"from 1 to 1024, got 1000000")


def three_epochs_of_metrics(tmp_path):
    """A metrics.jsonl of a 3-epoch run, as `train` writes it."""
    baselines = {"bicubic": {"psnr": 30.0, "ssim": 0.9}, "lanczos": {"psnr": 31.0, "ssim": 0.91}}
    records = [{"epoch": e, "adversarial": e > 1, "train": {"g_loss": 0.01 / e},
                "validation": {"g_loss": 0.012 / e, "psnr": 29 + e, "ssim": 0.9,
                               "discriminator": {"accuracy": 0.5 + 0.1 * e, "f1": 0.4 + 0.1 * e}},
                "baselines": baselines} for e in (1, 2, 3)]
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(json.dumps(r) for r in records))
    return metrics


def test_plots_draws_the_reports_figures(tmp_path, tiny_onnx):
    metrics = three_epochs_of_metrics(tmp_path)
    face = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (192, 168), np.uint8)).save(face)
    result = CliRunner().invoke(main, ["plots", "--metrics", f"run={metrics}", "--out", str(tmp_path / "docs"),
                                       "--model", str(tiny_onnx), "--face", str(face)])
    assert result.exit_code == 0, result.output
    for name in ("losses", "psnr", "discriminator", "grid"):
        with Image.open(tmp_path / "docs" / f"{name}.png") as image:
            assert image.width > 300


def test_plots_before_draws_real_photos_with_both_models_named(tmp_path, tiny_onnx, tiny_conditioned_onnx,
                                                                monkeypatch):
    from enhance_edge.train import plots

    metrics = three_epochs_of_metrics(tmp_path)
    titles = []
    save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: titles.append(fig.get_suptitle()) or save(fig, path))
    result = CliRunner().invoke(main, ["plots", "--metrics", f"run={metrics}", "--out", str(tmp_path / "docs"),
                                       "--before", str(tiny_conditioned_onnx), "--model", str(tiny_onnx)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"wrote {tmp_path / 'docs' / 'real-photos.png'}"
    assert titles[-1] == f"Real photos x2: input | Lanczos | {tiny_conditioned_onnx.stem} | {tiny_onnx.stem}"
    with Image.open(tmp_path / "docs" / "real-photos.png") as image:
        assert image.width > 300


def test_plots_refuses_models_of_two_scales_before_drawing_anything(tmp_path, tiny_onnx, tiny_x4_onnx):
    metrics = three_epochs_of_metrics(tmp_path)
    result = CliRunner().invoke(main, ["plots", "--metrics", f"run={metrics}", "--out", str(tmp_path / "docs"),
                                       "--before", str(tiny_x4_onnx), "--model", str(tiny_onnx)])
    assert result.exit_code == 2
    assert f"'{tiny_x4_onnx}' upscales x4, --model '{tiny_onnx}' x2: compare models of one scale" in result.output
    assert not (tmp_path / "docs").exists()
