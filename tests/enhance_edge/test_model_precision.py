"""Choosing between the bundled fp32 model and its int8 twin (`upscale --precision`)."""

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from enhance_edge import model as model_module
from enhance_edge.cli import main
from enhance_edge.errors import ModelError
from enhance_edge.model import bundled_model_path, int8_is_exact_here, int8_model_path


@pytest.fixture
def package_models(tmp_path, monkeypatch, tiny_onnx):
    """A stand-in for the installed package's models/ folder, holding only default.onnx."""
    (tmp_path / "models").mkdir()
    shutil.copy(tiny_onnx, tmp_path / "models" / "default.onnx")
    monkeypatch.setattr(model_module.resources, "files", lambda package: tmp_path)
    return tmp_path / "models"


def test_the_int8_model_lives_beside_the_fp32_one():
    assert int8_model_path(Path("models/default.onnx")) == Path("models/default-int8.onnx")


def test_without_an_int8_model_auto_is_fp32_and_int8_is_an_error(package_models):
    fp32 = package_models / "default.onnx"
    assert bundled_model_path(precision="fp32") == bundled_model_path(precision="auto") == fp32
    with pytest.raises(ModelError, match=r"no int8 model .*default-int8.onnx.*enhance-edge quantize"):
        bundled_model_path(precision="int8")
    with pytest.raises(ModelError, match="precision must be one of auto, int8, fp32, got 'fp16'"):
        bundled_model_path(precision="fp16")


@pytest.mark.parametrize("exact", [True, False])
def test_auto_takes_int8_only_where_the_cpu_sums_it_exactly(package_models, monkeypatch, exact):
    shutil.copy(package_models / "default.onnx", package_models / "default-int8.onnx")
    monkeypatch.setattr(model_module, "int8_is_exact_here", lambda: exact)
    assert bundled_model_path(precision="auto").name == ("default-int8.onnx" if exact else "default.onnx")
    assert bundled_model_path(precision="int8").name == "default-int8.onnx"


@pytest.mark.parametrize("machine, flags, exact", [
    ("aarch64", None, True),
    ("x86_64", "fpu avx2 avx512f avx512_vnni", True),
    ("x86_64", "fpu avx2 avx_vnni", True),
    ("x86_64", "fpu avx2 avx512f avx512bw", False),  # AVX-512 without VNNI: 16-bit saturating pairs
    ("x86_64", None, False),  # no /proc/cpuinfo: cautious
])
def test_exact_int8_needs_vnni_amx_or_arm(tmp_path, machine, flags, exact):
    cpuinfo = tmp_path / "cpuinfo"
    if flags is not None:
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert int8_is_exact_here(machine, cpuinfo) is exact


def test_upscale_precision_picks_the_bundled_model(package_models, tmp_path):
    from PIL import Image

    Image.new("L", (6, 5), 128).save(tmp_path / "face.png")
    result = CliRunner().invoke(main, ["upscale", str(tmp_path / "face.png"), "--precision", "int8"])
    assert result.exit_code == 1 and "no int8 model" in result.output
    assert not (tmp_path / "face_x2.png").exists()
    result = CliRunner().invoke(main, ["upscale", str(tmp_path / "face.png"), "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "face_x2.png").size == (12, 10)


def test_precision_with_an_explicit_model_is_a_usage_error(tiny_onnx, tmp_path):
    from PIL import Image

    Image.new("L", (6, 5), 128).save(tmp_path / "face.png")
    result = CliRunner().invoke(main, ["upscale", str(tmp_path / "face.png"), "--model", str(tiny_onnx),
                                       "--precision", "int8"])
    assert result.exit_code == 2 and "--precision" in result.output
    assert not (tmp_path / "face_x2.png").exists()
