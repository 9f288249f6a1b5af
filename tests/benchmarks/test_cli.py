"""`enhance-edge bench` through click's CliRunner, on tiny inputs (no timing thresholds)."""

from pathlib import Path

from click.testing import CliRunner

from enhance_edge.benchmarks import run
from enhance_edge.cli import main
from enhance_edge.model import int8_model_path

YALE_TEST = Path(__file__).parent.parent / "data" / "yale_test"


def test_bench_command_prints_the_table_and_writes_the_files(models, other_onnx, tmp_path):
    fp32, int8 = models
    result = CliRunner().invoke(main, ["bench", "--model", str(fp32), "--int8", str(int8), "--data", str(YALE_TEST),
                                       "--peers", str(tmp_path / "no-peers"), "--sizes", "8x6", "--threads", "1",
                                       "--batch", "2", "--min-time", "0", "--min-reps", "1", "--peak-size", "64",
                                       "--section", "latency", "--compare", str(other_onnx),
                                       "--out", str(tmp_path / "out")])
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
