"""The latency measurement quantize and the benchmarks share."""

import pytest

from enhance_edge.export.timing import measure


def test_measure_warms_up_then_repeats():
    calls = []
    timing = measure(lambda: calls.append(1), warmup=3, min_reps=4, min_time_s=0.0)
    assert len(calls) == 7 and timing.reps == 4 and 0 <= timing.best_s <= timing.median_s <= timing.p90_s
    with pytest.raises(ValueError):
        measure(lambda: None, min_reps=0)
