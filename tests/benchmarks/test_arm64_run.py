"""The ARM64 comparison's steps (benchmarks/arm64.sh) as they run on this machine's side: a folder's
models on the prepared faces, compared with a run of themselves."""

import platform

import numpy as np

from enhance_edge.benchmarks.arm64_run import compare, prepare, run
from enhance_edge.core.model import bundled_model_path


def test_every_bundled_x2_model_runs_on_the_prepared_faces_and_compares(tmp_path, yale_test_faces):
    inputs, outputs, models = tmp_path / "inputs.npz", tmp_path / "outputs.npz", bundled_model_path("default").parent
    prepare(inputs, yale_test_faces[0].parent)
    run(inputs, outputs, models)
    found = np.load(outputs)
    x2 = {path.stem for path in models.glob("*.onnx") if "-x4" not in path.stem}  # the faces' HR is x2 of their LR
    expected = {stem if stem.endswith("-int8") else f"{stem}-fp32" for stem in x2}
    assert {key for key in found.files if key.endswith(("-fp32", "-int8"))} == expected
    assert found["fast-fp32"].shape == (12, 112, 92)
    table = compare(inputs, outputs, outputs).splitlines()
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in table[4:]}
    assert set(rows) >= {"fast-fp32", "default-fp32"}
    assert rows["default-fp32"][1:4] == rows["fast-fp32"][1:4] == ["0.00e+00", "0.00%", "0"]  # a run against itself


def test_an_int8_file_runs_with_its_kernels_and_in_exact_arithmetic(tmp_path, yale_test_faces, models):
    # no bundled int8 file ships (MODEL_CARD.md, "int8"): a folder of one made by `quantize`, as MODELS= names it
    inputs, outputs = tmp_path / "inputs.npz", tmp_path / "outputs.npz"
    prepare(inputs, yale_test_faces[0].parent)
    run(inputs, outputs, models[1].parent)
    found = np.load(outputs)
    assert {"tiny-fp32", "tiny-int8", "tiny-int8-exact"} <= set(found.files)
    assert found["tiny-int8"].shape == found["tiny-int8-exact"].shape == (12, 112, 92)
    table = compare(inputs, outputs, outputs).splitlines()
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in table[4:]}
    # int8 in exact arithmetic on each side against the other's kernels (here both sides are this machine)
    assert set(rows) >= {"tiny-fp32", "tiny-int8", f"tiny-int8 ({platform.machine()} exact)"}
    assert rows["tiny-int8"][1:4] == ["0.00e+00", "0.00%", "0"]
