"""The cost of "auto": the estimator's run, timed against the same file with a strength given."""

import pytest

from enhance_edge.benchmarks.conditioning import main, overhead


def test_a_conditioned_file_is_timed_both_ways(tiny_conditioned_onnx):
    measured = overhead(tiny_conditioned_onnx, size=32, threads=1, reps=3)
    assert measured.auto_ms > 0 and measured.given_ms > 0
    assert measured.ratio == measured.auto_ms / measured.given_ms


def test_a_file_without_a_strength_input_is_refused_by_name(tiny_onnx):
    with pytest.raises(ValueError, match=r"tiny\.onnx takes no strength"):
        overhead(tiny_onnx, size=32, threads=1, reps=1)


def test_the_command_prints_a_row_per_file(tiny_conditioned_onnx, capsys):
    main([str(tiny_conditioned_onnx), "--size", "32", "--threads", "1", "--reps", "2"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny")]
    assert len(rows) == 1 and rows[0].startswith("| tiny-conditioned.onnx |") and rows[0].endswith("% |")
