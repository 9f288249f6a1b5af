"""Bundled models: listing them, naming them, and choosing between fp32 and int8 (`--precision`)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from enhance_edge.core import model as model_module
from enhance_edge.core.batch import model_precision
from enhance_edge.apps.cli import main
from enhance_edge.errors import ModelError
from enhance_edge.core.model import (bundled_model_path, bundled_models, int8_instructions, int8_model_path,
                                     int8_pair_sums, int8_runs_exactly_here, int8_weight_bits, open_session,
                                     resolve_model)
from enhance_edge.core.upscaler import Upscaler

from ...conftest import with_int8_metadata


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
    with pytest.raises(ModelError, match=r"no int8 .default. model .*default-int8.onnx.*enhance-edge quantize"):
        bundled_model_path(precision="int8")
    with pytest.raises(ModelError, match="precision must be one of auto, int8, fp32, got 'fp16'"):
        bundled_model_path(precision="fp16")


@pytest.mark.parametrize("fast", [True, False])
def test_auto_takes_int8_only_where_the_cpu_sums_it_exactly_and_fast(package_models, monkeypatch, fast):
    shutil.copy(package_models / "default.onnx", package_models / "default-int8.onnx")
    monkeypatch.setattr(model_module, "int8_runs_exactly_here", lambda path: fast)
    assert bundled_model_path(precision="auto").name == ("default-int8.onnx" if fast else "default.onnx")
    assert bundled_model_path(precision="int8").name == "default-int8.onnx"


@pytest.mark.parametrize("instructions, pair_sums, weight_bits, runs", [
    (["avx512_vnni"], False, None, True),  # VNNI sums every int8 file exactly
    (["avx512_vnni"], False, 7, True),
    ([], True, None, False),  # AVX2: an 8-bit file's pairs of products can saturate 16 bits
    ([], True, 8, False),
    ([], True, 7, True),  # ... a 7-bit one's cannot
    ([], False, 7, False),  # neither (e.g. ARM64 without dot product)
])
def test_auto_runs_a_7_bit_int8_file_on_avx2_too(package_models, monkeypatch, instructions, pair_sums, weight_bits,
                                                  runs):
    int8 = with_int8_metadata(package_models / "default.onnx", package_models / "default-int8.onnx", weight_bits)
    monkeypatch.setattr(model_module, "int8_instructions", lambda: instructions)
    monkeypatch.setattr(model_module, "int8_pair_sums", lambda: pair_sums)
    assert int8_weight_bits(open_session(int8, "cpu", 1)[1].metadata) == (weight_bits or 8)
    assert int8_runs_exactly_here(int8) == runs
    assert bundled_model_path(precision="auto") == (int8 if runs else package_models / "default.onnx")


@pytest.mark.parametrize("machine, line, found", [
    ("x86_64", "flags\t\t: fpu sse2 avx2 fma", True),
    ("x86_64", "flags\t\t: fpu avx2 avx512f avx512bw", True),  # AVX-512 without VNNI sums pairs in 16 bits too
    ("x86_64", "flags\t\t: fpu avx2 avx512f avx512_vnni", False),  # VNNI: int8_instructions
    ("x86_64", "flags\t\t: fpu avx2 avx_vnni", False),
    ("x86_64", "flags\t\t: fpu sse4_2 avx", False),  # no AVX2: not measured
    ("aarch64", "Features\t: fp asimd avx2", False),
])
def test_int8_pair_sums_is_x86_avx2_without_vnni(tmp_path, machine, line, found):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\n{line}\n")
    assert int8_pair_sums(machine, cpuinfo) == found
    assert not int8_pair_sums("x86_64", tmp_path / "missing")


@pytest.mark.parametrize("machine, system, line, found", [
    ("x86_64", "Linux", "flags\t\t: fpu avx2 avx512f avx512_vnni", ["avx512_vnni"]),
    ("x86_64", "Linux", "flags\t\t: fpu avx2 avx_vnni", ["avx_vnni"]),
    ("x86_64", "Linux", "flags\t\t: fpu avx2 avx512f avx512_vnni amx_tile amx_int8", ["avx512_vnni", "amx_int8"]),
    ("x86_64", "Linux", "flags\t\t: fpu avx2 avx512f avx512bw", []),  # AVX-512 without VNNI: 16-bit saturating pairs
    ("aarch64", "Linux", "Features\t: fp asimd crc32 atomics asimddp", ["asimddp"]),
    ("aarch64", "Linux", "Features\t: fp asimd crc32", []),  # ARM64 without dot product: exact, not faster
    ("arm64", "Darwin", None, ["dotprod"]),  # every Apple silicon Mac
    ("x86_64", "Windows", None, []),  # no /proc/cpuinfo: cautious
])
def test_auto_s_int8_needs_vnni_amx_or_arm64_dot_product(tmp_path, machine, system, line, found):
    cpuinfo = tmp_path / "cpuinfo"
    if line is not None:
        cpuinfo.write_text(f"processor\t: 0\n{line}\n")
    assert int8_instructions(machine, cpuinfo, system) == found


def test_upscale_precision_picks_the_bundled_model(package_models, tmp_path):
    from PIL import Image

    Image.new("L", (6, 5), 128).save(tmp_path / "face.png")
    result = CliRunner().invoke(main, ["upscale", str(tmp_path / "face.png"), "--precision", "int8"])
    assert result.exit_code == 1 and "no int8 'default' model" in result.output
    assert not (tmp_path / "face_x2.png").exists()
    result = CliRunner().invoke(main, ["upscale", str(tmp_path / "face.png"), "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "face_x2.png").size == (12, 10)


def test_a_precision_other_than_a_model_files_own_is_refused_in_one_line(tiny_onnx, tmp_path):
    from PIL import Image

    Image.new("L", (6, 5), 128).save(tmp_path / "face.png")
    result = CliRunner().invoke(main, ["upscale", str(tmp_path / "face.png"), "--model", str(tiny_onnx),
                                       "--precision", "int8"])
    assert result.exit_code == 1 and result.output.startswith(f"error: {str(tiny_onnx)!r} is an fp32 model file, "
                                                              f"and --precision int8 cannot change that")
    assert not (tmp_path / "face_x2.png").exists()


def test_an_int8_file_runs_every_image_in_int8_with_precision_auto_or_int8(package_models):
    int8 = with_int8_metadata(package_models / "default.onnx", package_models / "default-int8.onnx")
    image = np.full((12, 10), 90, np.uint8)  # flat: the kind the per-image routing handed to fp32
    auto, asked = Upscaler(int8, precision="auto", threads=1), Upscaler(int8, precision="int8", threads=1)
    auto.upscale(image)
    asked.upscale(image)
    assert (auto.last_precision, asked.last_precision) == ("int8", "int8")
    with pytest.raises(ModelError, match=r"is an int8 model file, and --precision fp32 cannot change that"):
        Upscaler(int8, precision="fp32")


def test_a_model_is_named_or_given_as_a_file(package_models, tiny_onnx):
    assert resolve_model() == resolve_model("default") == package_models / "default.onnx"
    assert resolve_model(str(tiny_onnx)) == tiny_onnx
    with pytest.raises(ModelError, match=r"'nothing.onnx' does not exist: it is neither a file nor a bundled model"):
        resolve_model("nothing.onnx")
    assert resolve_model(tiny_onnx, "fp32") == tiny_onnx  # its own precision
    with pytest.raises(ModelError, match=r"is an fp32 model file, and --precision int8 cannot change that"):
        resolve_model(tiny_onnx, "int8")


def test_models_lists_every_installed_file_from_its_metadata(package_models):
    shutil.copy(package_models / "default.onnx", package_models / "default-int8.onnx")
    listed = bundled_models()
    assert [(m.name, m.precision) for m in listed] == [("default", "fp32"), ("default", "int8")]
    fp32 = listed[0]
    assert (fp32.scale, fp32.path, fp32.test_psnr) == (2, str(package_models / "default.onnx"), None)
    assert fp32.macs_per_input_pixel > 0 and fp32.file_bytes == (package_models / "default.onnx").stat().st_size

    result = CliRunner().invoke(main, ["models", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [m.to_dict() for m in listed]
    table = CliRunner().invoke(main, ["models"]).output.splitlines()
    assert table[0].split()[:3] == ["name", "precision", "scale"] and len(table) == 4
    assert table[2].split()[:3] == ["default", "int8", "x2"]
    # and what --precision auto runs on this CPU, from the instructions it has
    assert table[3].startswith("--precision auto on this CPU: ")
    assert ("int8 where an int8 file is listed (it has " in table[3]) == bool(int8_instructions())


def test_models_says_what_auto_runs_on_a_cpu_with_or_without_int8_instructions(package_models, monkeypatch):
    monkeypatch.setattr(model_module, "int8_instructions", lambda: ["avx512_vnni"])
    assert CliRunner().invoke(main, ["models"]).output.splitlines()[-1] == (
        "--precision auto on this CPU: int8 where an int8 file is listed (it has avx512_vnni)")
    monkeypatch.setattr(model_module, "int8_instructions", list)
    monkeypatch.setattr(model_module, "int8_pair_sums", lambda: False)
    assert CliRunner().invoke(main, ["models"]).output.splitlines()[-1].startswith(
        "--precision auto on this CPU: fp32 (it has no VNNI, AMX or ARM64 dot product")
    monkeypatch.setattr(model_module, "int8_pair_sums", lambda: True)
    with_int8_metadata(package_models / "default.onnx", package_models / "default-int8.onnx", 8)
    assert CliRunner().invoke(main, ["models"]).output.splitlines()[-1].startswith(
        "--precision auto on this CPU: int8 for none (files of 7-bit weights")
    with_int8_metadata(package_models / "default.onnx", package_models / "default-int8.onnx", 7)
    listed = json.loads(CliRunner().invoke(main, ["models", "--json"]).output)
    assert [(m["precision"], m["weight_bits"]) for m in listed] == [("fp32", None), ("int8", 7)]
    assert CliRunner().invoke(main, ["models"]).output.splitlines()[-1] == (
        "--precision auto on this CPU: int8 for default (files of 7-bit weights, which its AVX2 kernels sum "
        "exactly), fp32 for the rest")


def test_auto_runs_the_installed_int8_file_on_every_image_where_the_cpu_is_fast(package_models, monkeypatch):
    with_int8_metadata(package_models / "default.onnx", package_models / "default-int8.onnx")
    image = np.full((12, 10), 90, np.uint8)
    for fast, precision in ((True, "int8"), (False, "fp32")):
        monkeypatch.setattr(model_module, "int8_runs_exactly_here", lambda path: fast)
        auto = Upscaler("default", precision="auto", threads=1)
        auto.upscale(image)
        assert auto.precision == auto.last_precision == model_precision(auto) == precision
