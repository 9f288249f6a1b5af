"""`enhance-edge export` and `enhance-edge quantize` through click's CliRunner."""

import inspect
import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from enhance_edge.apps.cli import main
from enhance_edge.export.cli import export, quantize
from enhance_edge.export.quantize import quantize_model
from enhance_edge.export.gate import MAX_MEAN_LOSS_DB, MIN_PSNR_VS_FP32_DB
from enhance_edge.core.model import open_session

ANY_LOSS = 100.0  # dB: accept any recipe (these tests check the command, not the quality)


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


def test_quantize_command_writes_beside_the_model_by_default(tmp_path, tiny_onnx, face_folder):
    model = tmp_path / "face.onnx"
    shutil.copy(tiny_onnx, model)
    result = CliRunner().invoke(main, ["quantize", str(model), "--calibration", str(face_folder), "--method", "minmax",
                                       "--activations", "uint8", "--weights", "int8", "--silu", "int8",
                                       "--max-loss-db", str(ANY_LOSS), "--min-psnr-vs-fp32", "0",
                                       "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "minmax a:uint8 w:int8 silu:int8 out:float" in result.output
    assert "kept calibration=minmax activations=uint8 weights=int8 silu=int8 output=float" in result.output
    assert (tmp_path / "face-int8.onnx").is_file()
    # the gate's table: two rows per set, against fp32's output and against the ground truth
    assert "validation faces        3  fp32 output (PSNR dB)" in result.output
    assert "truth (gated, loss dB)" in result.output and "truth (shown, loss dB)" in result.output
    assert open_session(tmp_path / "face-int8.onnx")[1].metadata["precision"] == "int8"


@pytest.mark.parametrize("options, message", [
    (["--output-layers", "int8", "--output-convs", "2"],
     "Invalid value for --output-convs: 2: more than 1 needs --output-layers float"),
    (["--weights", "uint8", "--weight-bits", "7"],
     "Invalid value for --weight-bits: 7 needs --weights int8 (given: uint8)"),
])
def test_quantize_refuses_recipes_it_cannot_make_naming_the_option(tiny_onnx, face_folder, options, message):
    result = CliRunner().invoke(main, ["quantize", str(tiny_onnx), "--calibration", str(face_folder), *options])
    assert result.exit_code == 2 and message in result.output
    assert not (tiny_onnx.parent / "tiny-int8.onnx").exists()


def test_the_commands_defaults_are_the_librarys_constants():
    from enhance_edge.export.onnx_export import PARITY_TOLERANCE, export_checkpoint

    defaults = {(command.name, param.name): param.default for command in (export, quantize)
                for param in command.params}
    assert defaults["export", "tolerance"] == PARITY_TOLERANCE == inspect.signature(export_checkpoint).parameters[
        "tolerance"].default
    assert defaults["quantize", "max_loss_db"] == MAX_MEAN_LOSS_DB == inspect.signature(quantize_model).parameters[
        "max_loss_db"].default
    assert defaults["quantize", "min_psnr_vs_fp32_db"] == MIN_PSNR_VS_FP32_DB == inspect.signature(
        quantize_model).parameters["min_psnr_vs_fp32_db"].default
    help_text = " ".join(CliRunner().invoke(main, ["quantize", "--help"]).output.split())
    assert f"[default: {MIN_PSNR_VS_FP32_DB}]" in help_text and f"[default: {MAX_MEAN_LOSS_DB};" in help_text
