"""Throughput of `upscale --cluster` (a local Ray Data actor pool) against the single-process CLI.

    python -m enhance_edge.benchmarks.cluster --faces 2000 --photos 40 --model fast

Synthetic inputs (colour JPEGs: face crops of 92x112 and ~2-megapixel photos of 1632x1224) are
upscaled by `enhance-edge upscale` in a subprocess and by enhance_edge.apps.cluster on a local Ray
with ``--cpus`` CPUs, for each actor count of ``--actors``. Steady-state throughput is files per
second once started: the files over the run's time less the same engine's time for one
16x16 image (the CLI's model loading, the pool's actor start-up), which is shown beside it.
Ray's own start-up (ray.init, once) is reported apart. Prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from enhance_edge.benchmarks.machine import cpu_info
from enhance_edge.apps.cluster import Status, plan_actors, upscale_on_cluster

FACE_SIZE = (92, 112)  # width, height: the HR Yale faces
PHOTO_SIZE = (1632, 1224)  # 2.0 megapixels
IDLE_LOAD = 0.5  # a 1-minute load average above this says other work shares the CPUs


@dataclass
class Measurement:
    engine: str
    files: int
    wall_s: float  # the whole run: start-up, every file, shutting down
    startup_s: float  # the same engine's run on one 16x16 image: model loading, the pool's actors

    @property
    def steady_files_per_s(self) -> float:
        return self.files / (self.wall_s - self.startup_s)

    def row(self, baseline: Measurement | None) -> str:
        share = f"{self.steady_files_per_s / baseline.steady_files_per_s:.0%}" if baseline else "(baseline)"
        return (f"| {self.engine} | {self.files} | {self.wall_s:.1f} | {self.startup_s:.1f} | "
                f"{self.steady_files_per_s:.2f} | {share} |")


def synthetic_images(folder: Path, count: int, size: tuple[int, int], seed: int) -> None:
    """Smooth colour gradients with blobs and a little noise: JPEG sizes and decode times like photos'."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x, y = x / width, y / height
    for index in range(count):
        channels = []
        for channel in range(3):
            cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.4)
            plane = (0.3 + 0.3 * x * (channel + 1) / 3 + 0.4 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
                     + rng.normal(0, 0.02, (height, width)))
            channels.append(np.clip(plane * 255, 0, 255).astype(np.uint8))
        Image.fromarray(np.dstack(channels)).save(folder / f"img{index:05d}.jpg", quality=90)


def workloads(faces: int, photos: int) -> list[tuple[str, str, int, tuple[int, int]]]:
    """(title, folder name, count, size) of each workload asked for; a count of 0 leaves it out."""
    asked = [(f"{faces} face crops, {FACE_SIZE[0]}x{FACE_SIZE[1]} JPEG", "faces", faces, FACE_SIZE),
             (f"{photos} photos, {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEG "
              f"({PHOTO_SIZE[0] * PHOTO_SIZE[1] / 1e6:.1f} MP)", "photos", photos, PHOTO_SIZE)]
    return [workload for workload in asked if workload[2] > 0]


def run_cli(inputs: Path, output: Path, model: str) -> float:
    """Seconds `enhance-edge upscale INPUTS -o OUTPUT` takes, run as a user runs it."""
    command = [sys.executable, "-c", "from enhance_edge.apps.cli import main; main()", "upscale", str(inputs), "-o",
               str(output), "--model", model]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"enhance-edge upscale failed: {done.stderr.strip()}")
    shutil.rmtree(output)
    return time.monotonic() - start


def run_cluster(inputs: Path, output: Path, model: str, actors: int) -> tuple[float, float, str]:
    """Seconds enhance_edge.apps.cluster takes on the running local Ray, the CPU seconds this driver
    process spent meanwhile (planning, bundling, Ray Data's executor, reporting), and the pool."""
    start, cpu = time.monotonic(), time.process_time()
    result = upscale_on_cluster([inputs], output, cluster="local", model=model, actors=actors)
    wall_s, driver_cpu_s = time.monotonic() - start, time.process_time() - cpu
    if result.count(Status.FAILED):
        raise SystemExit(f"the cluster run failed files: see {result.summary}")
    shutil.rmtree(output)
    plan = result.actors
    return wall_s, driver_cpu_s, f"Ray Data, {plan.count} actor(s) x {plan.threads} thread(s), {plan.cpus:g} CPU each"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=2000)
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--model", default="fast", help="bundled model or ONNX file (default: fast, whose short "
                                                         "compute per file exposes the engine's overhead most)")
    parser.add_argument("--actors", default="2,1", help="actor counts to measure, comma-separated")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs of each engine, taken in turn; the fastest counts (the least disturbed by "
                             "other load)")
    args = parser.parse_args()
    import ray

    cpu = cpu_info()
    print(f"CPU: {cpu['model']}, {cpu['logical_cpus']} logical CPUs; load average {os.getloadavg()[0]:.2f}")
    if os.getloadavg()[0] > IDLE_LOAD:
        print(f"note: the machine is not idle (load average over {IDLE_LOAD}): other work moves these figures "
              f"more than the engine does; measure on an idle machine for RESULTS.md")
    print(f"actor plan for {args.cpus} CPUs: {plan_actors(args.cpus, None, 1 << 30)}")
    with tempfile.TemporaryDirectory(prefix="enhance-edge-cluster-bench-") as scratch:
        scratch = Path(scratch)
        asked = workloads(args.faces, args.photos)
        for seed, (_, name, count, size) in enumerate(asked):
            synthetic_images(scratch / name, count, size, seed)
        synthetic_images(scratch / "probe", 1, (16, 16), 99)
        start = time.monotonic()
        ray.init(num_cpus=args.cpus, include_dashboard=False)
        startup_s = time.monotonic() - start
        try:
            print(f"\nRay start-up (ray.init, local, {args.cpus} CPUs): {startup_s:.1f} s; model {args.model}\n")
            actor_counts = [int(count) for count in args.actors.split(",")]
            # Ray Data's first dataset of a session starts its own helpers: part of the cluster's start-up.
            first_s = run_cluster(scratch / "probe", scratch / "out", args.model, actor_counts[0])[0]
            print(f"first dataset of the session (one 16x16 image): {first_s:.1f} s\n")
            cli_startup = min(run_cli(scratch / "probe", scratch / "out", args.model) for _ in range(2))
            ray_startup = {actors: min(run_cluster(scratch / "probe", scratch / "out", args.model, actors)[0]
                                       for _ in range(2)) for actors in actor_counts}
            for title, name, count, _ in asked:
                cli_runs, ray_runs = [], {actors: [] for actors in actor_counts}
                for _ in range(args.repeat):
                    cli_runs.append(run_cli(scratch / name, scratch / "out", args.model))
                    for actors in actor_counts:
                        ray_runs[actors].append(run_cluster(scratch / name, scratch / "out", args.model, actors))
                print(f"{title}; fastest of {args.repeat} runs each, taken in turn\n")
                print("| engine | files | end to end (s) | start-up (s) | steady files/s | of the CLI's |")
                print("|---|---|---|---|---|---|")
                baseline = Measurement("single-process CLI, 2 onnxruntime threads", count, min(cli_runs), cli_startup)
                print(baseline.row(None))
                for actors, runs in ray_runs.items():
                    wall_s, driver_cpu_s, engine = min(runs)
                    print(Measurement(engine, count, wall_s, ray_startup[actors]).row(baseline))
                driver_ms = [1000 * driver_cpu_s / count for runs in ray_runs.values() for _, driver_cpu_s, _ in runs]
                print(f"\ndriver CPU per file: {min(driver_ms):.2f}-{max(driver_ms):.2f} ms; "
                      f"load average after: {os.getloadavg()[0]:.2f}\n", flush=True)
        finally:
            ray.shutdown()


if __name__ == "__main__":
    main()
