"""Wall-clock latency of a callable: warm-up first, then repetitions until enough time has passed.

In export/ because quantize times its recipes with it; the benchmarks (a layer above) use it too.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Timing:
    median_s: float
    p90_s: float
    reps: int
    best_s: float  # the fastest repetition: what the machine can do when nothing disturbs it

    to_dict = asdict


def measure(run: Callable[[], object], *, warmup: int = 2, min_reps: int = 5, min_time_s: float = 1.0,
            max_reps: int = 1000) -> Timing:
    """Median and 90th-percentile latency of ``run()``.

    Warm-up calls are discarded (first-run allocation, lazy kernel packing). Repetitions go on
    until both ``min_reps`` calls and ``min_time_s`` seconds are done, so that fast calls get
    many samples and slow ones (a 1024x1024 image in fp32) still finish in bounded time.
    """
    if warmup < 0 or min_reps < 1 or max_reps < min_reps:
        raise ValueError(f"need warmup >= 0 and 1 <= min_reps <= max_reps, "
                         f"got warmup={warmup}, min_reps={min_reps}, max_reps={max_reps}")
    for _ in range(warmup):
        run()
    times = []
    started = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - started < min_time_s and len(times) < max_reps):
        tick = time.perf_counter()
        run()
        times.append(time.perf_counter() - tick)
    return Timing(float(np.median(times)), float(np.percentile(times, 90)), len(times), float(np.min(times)))
