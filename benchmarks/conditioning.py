"""What "auto" costs: a conditioned model file fed only its image (its estimator reads the strength)
against the same file with a strength given (the estimator does not run: the network alone).

    python -m enhance_edge.benchmarks.conditioning [--size 512] [--threads 2] [--reps 30] [MODEL ...]

MODEL: model files (default: every bundled file, fp32 and int8; all are conditioned). The
two feeds alternate call by call, so a machine that slows down slows both; medians. A strength
given costs the network nothing over an unconditioned one of the same size but the level plane
(9 multiply-adds per channel in the head), so the ratio is issue 26's "conditioning overhead".
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from enhance_edge.core.model import INPUT_NAME, STRENGTH_NAME, bundled_models, open_session


@dataclass(frozen=True)
class Overhead:
    model: str
    auto_ms: float
    given_ms: float

    @property
    def ratio(self) -> float:
        return self.auto_ms / self.given_ms


def overhead(path: str | Path, size: int = 512, threads: int | None = None, reps: int = 30) -> Overhead:
    """Median latency of ``path`` on a size x size image, "auto" and at a given strength, interleaved."""
    session, info = open_session(path, "cpu", threads)
    if not info.conditioned:
        raise ValueError(f"{path} takes no strength: it has no estimator to measure")
    image = np.random.default_rng(0).random((1, 1, size, size), dtype=np.float32)
    feeds = {"auto": {INPUT_NAME: image}, "given": {INPUT_NAME: image, STRENGTH_NAME: np.array([0.3], np.float32)}}
    times: dict[str, list[float]] = {name: [] for name in feeds}
    for repetition in range(reps + 2):  # two warm-up rounds
        for name, feed in feeds.items():
            tick = time.perf_counter()
            session.run(None, feed)
            if repetition >= 2:
                times[name].append(time.perf_counter() - tick)
    return Overhead(str(path), *(float(np.median(times[name])) * 1e3 for name in ("auto", "given")))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="model files (default: the bundled conditioned ones)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args(argv)
    paths = args.models or [model.path for model in bundled_models()]
    print(f"{args.size}x{args.size}, {args.threads} threads, {os.cpu_count()} CPUs, median of {args.reps} "
          f"alternating calls each\n")
    print("| model | auto (ms) | strength given (ms) | overhead |")
    print("|---|---|---|---|")
    for path in paths:
        measured = overhead(path, args.size, args.threads, args.reps)
        print(f"| {Path(path).name} | {measured.auto_ms:.1f} | {measured.given_ms:.1f} | "
              f"{100 * (measured.ratio - 1):+.1f}% |")


if __name__ == "__main__":
    main()
