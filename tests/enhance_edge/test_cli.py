"""The export, evaluate and plots commands through click's CliRunner."""

import json

import numpy as np
import onnxruntime as ort
from click.testing import CliRunner
from PIL import Image

from enhance_edge.cli import main


def test_help_lists_the_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("upscale", "export", "train", "evaluate", "plots", "data"):
        assert command in result.output


def test_export_writes_a_model_that_matches_the_checkpoint(tmp_path, tiny_generator):
    import torch

    from enhance_edge.train import checkpoint
    from enhance_edge.train.config import RunConfig

    ckpt = tmp_path / "best.pt"
    checkpoint.save(ckpt, {"config": RunConfig(generator=tiny_generator.config).to_dict(), "epoch": 3,
                           "data": {"folder": "faces"}, "generator": tiny_generator.state_dict()})
    out = tmp_path / "model.onnx"
    result = CliRunner().invoke(main, ["export", str(ckpt), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "parity 1x1x56x46: max |onnx - torch|" in result.output and "parity 2x1x23x37" in result.output
    x = np.random.default_rng(0).random((1, 1, 11, 7), dtype=np.float32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = tiny_generator(torch.from_numpy(x)).numpy()
    assert np.abs(session.run(None, {"input": x})[0] - expected).max() <= 1e-4
    metadata = session.get_modelmeta().custom_metadata_map
    assert json.loads(metadata["trained_on"]) == {"folder": "faces"} and metadata["epoch"] == "3"


def test_export_of_a_foreign_file_is_one_clear_line(tmp_path):
    bogus = tmp_path / "weights.pt"
    bogus.write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(main, ["export", str(bogus), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: '{bogus}' is not a readable checkpoint")
    assert "Traceback" not in result.output and not (tmp_path / "m.onnx").exists()


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


def test_plots_draws_the_reports_figures(tmp_path, tiny_onnx):
    baselines = {"bicubic": {"psnr": 30.0, "ssim": 0.9}, "lanczos": {"psnr": 31.0, "ssim": 0.91}}
    records = [{"epoch": e, "adversarial": e > 1, "train": {"g_loss": 0.01 / e},
                "validation": {"g_loss": 0.012 / e, "psnr": 29 + e, "ssim": 0.9,
                               "discriminator": {"accuracy": 0.5 + 0.1 * e, "f1": 0.4 + 0.1 * e}},
                "baselines": baselines} for e in (1, 2, 3)]
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(json.dumps(r) for r in records))
    face = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (192, 168), np.uint8)).save(face)
    result = CliRunner().invoke(main, ["plots", "--metrics", f"run={metrics}", "--out", str(tmp_path / "docs"),
                                       "--model", str(tiny_onnx), "--face", str(face)])
    assert result.exit_code == 0, result.output
    for name in ("losses", "psnr", "discriminator", "grid"):
        with Image.open(tmp_path / "docs" / f"{name}.png") as image:
            assert image.width > 300
