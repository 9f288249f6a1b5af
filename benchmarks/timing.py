"""Wall-clock latency of a callable: warm-up first, then repetitions until enough time has passed."""

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

    to_dict = asdict


def measure(run: Callable[[], object], *, warmup: int = 2, min_reps: int = 5, min_time_s: float = 1.0,
            max_reps: int = 1000) -> Timing:
    """Median and 90th-percentile latency of ``run()``.

    Warm-up calls are discarded (first-run allocation, lazy kernel packing). Repetitions go on
    until both ``min_reps`` calls and ``min_time_s`` seconds are done, so that fast calls get
    many samples and slow ones (a 1024x1024 image in fp32) still finish in bounded time.
    """
    return measure_in_turns({"run": run}, warmup=warmup, min_reps=min_reps, min_time_s=min_time_s,
                            max_reps=max_reps)["run"]


def measure_in_turns(runs: dict[str, Callable[[], object]], *, warmup: int = 2, min_reps: int = 5,
                     min_time_s: float = 1.0, max_reps: int = 1000) -> dict[str, Timing]:
    """:func:`measure` for several callables at once, timed in turns (A, B, C, A, B, C, ...).

    On a shared machine a slow minute (another process, frequency scaling) then slows each of
    them alike, so the ratios between them hold even when the absolute times drift; timed one
    after the other, a ratio can swing by 20 % between runs. ``min_time_s`` counts the turns of
    all of them together.
    """
    if warmup < 0 or min_reps < 1 or max_reps < min_reps:
        raise ValueError(f"need warmup >= 0 and 1 <= min_reps <= max_reps, "
                         f"got warmup={warmup}, min_reps={min_reps}, max_reps={max_reps}")
    for run in runs.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    reps = 0
    started = time.perf_counter()
    while reps < min_reps or (time.perf_counter() - started < min_time_s and reps < max_reps):
        for name, run in runs.items():
            tick = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - tick)
        reps += 1
    return {name: Timing(float(np.median(t)), float(np.percentile(t, 90)), len(t)) for name, t in times.items()}
