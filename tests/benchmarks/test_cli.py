"""`enhance-edge bench` and the Pareto command through click's CliRunner, on tiny inputs (no timing
thresholds)."""

import json
from pathlib import Path

from click.testing import CliRunner

from enhance_edge.benchmarks import run
from enhance_edge.benchmarks.cli import pareto
from enhance_edge.apps.cli import main
from enhance_edge.core.model import int8_model_path

YALE_TEST = Path(__file__).parent.parent / "data" / "yale_test"


def test_bench_command_prints_the_table_and_writes_the_files_in_the_current_folder(models, other_onnx, tmp_path,
                                                                                   monkeypatch):
    fp32, int8 = models
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path / "out")  # an installed package's folder is no place for results
    result = CliRunner().invoke(main, ["bench", "--model", str(fp32), "--int8", str(int8), "--data", str(YALE_TEST),
                                       "--peers", str(tmp_path / "no-peers"), "--sizes", "8x6", "--threads", "1",
                                       "--batch", "2", "--min-time", "0", "--min-reps", "1", "--peak-size", "64",
                                       "--section", "latency", "--compare", str(other_onnx)])
    assert result.exit_code == 0, result.output
    assert "| ort-int8 | 8x6 |" in result.output and "skipped fsrcnn: peer weights" in result.output
    assert "| ort-other | 8x6 |" in result.output
    assert "ort-other latency vs OpenCV FSRCNN x2, 512x512, 2 threads" in result.output  # not measured here
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["RESULTS.md", "latency.png", "results.json"]


def test_bench_command_does_not_requantize_over_the_bundled_int8_model(tmp_path):
    bundled = int8_model_path(run.resolve_model("default", "fp32"))  # where it goes, shipped or not
    before = bundled.read_bytes() if bundled.is_file() else None
    result = CliRunner().invoke(main, ["bench", "--calibration", str(YALE_TEST), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--calibration would overwrite the bundled" in result.output
    assert "--int8 FILE" in result.output and not list(tmp_path.iterdir())
    assert (bundled.read_bytes() if bundled.is_file() else None) == before


def test_bench_command_rejects_bad_sizes(tmp_path):
    result = CliRunner().invoke(main, ["bench", "--sizes", "256", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "HEIGHTxWIDTH" in result.output
    assert not list(tmp_path.iterdir())


def test_bench_command_rejects_a_missing_compared_model(tmp_path):
    result = CliRunner().invoke(main, ["bench", "--compare", str(tmp_path / "gone.onnx"), "--out", str(tmp_path)])
    assert result.exit_code == 1 and "gone.onnx" in result.output and "Traceback" not in result.output
    assert not list(tmp_path.iterdir())


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_pareto_command_writes_the_plot_and_json_and_lists_what_it_skipped(models, other_onnx, face_folder, tmp_path):
    out = tmp_path / "docs" / "pareto.png"
    result = CliRunner().invoke(pareto, [*map(str, models), str(other_onnx), "--data", str(face_folder),
                                         "--peers", str(tmp_path / "no-peers"), "--size", "16x12",
                                         "--threads", "1", "--min-time", "0", "--min-reps", "1",
                                         "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "skipped fsrcnn: peer weights" in result.output and f"wrote {out}" in result.output
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert [row["label"] for row in json.loads(out.with_suffix(".json").read_text())["models"]] == [
        "4x1 fp32", "4x1 int8", "6x0 fp32"]


def test_pareto_command_refuses_a_bad_size_with_the_value(models, tmp_path):
    result = CliRunner().invoke(pareto, [str(models[0]), "--size", "512", "--out", str(tmp_path / "p.png")])
    assert result.exit_code == 2 and "expected HEIGHTxWIDTH[,HEIGHTxWIDTH...], got '512'" in result.output
    assert not list(tmp_path.iterdir())
