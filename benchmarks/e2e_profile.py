"""Where the time of `enhance-edge upscale` goes, per precision, on one colour PNG (896x1024 by default).

    python -m enhance_edge.benchmarks.e2e_profile [--size 896x1024] [--threads 2] [--reps 3] [--model fast]

Three measurements: the command as a user runs it (a fresh process, wall time, median of --reps);
Python's start and the command's imports alone (`python -c "import enhance_edge.apps.cli"`); and the
same command run in-process under cProfile, whose cumulative times are grouped into the stages a
file goes through (decode, session creation, pixel conversions, model runs and tiling, encode and
write). cProfile's own overhead is small here: the time is in a few native calls.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from enhance_edge.core.model import int8_model_path, resolve_model

from .run import upscale_command

# stage -> (file fragment, function name) whose cumulative time is the stage's; the tiling is the
# model stage less the onnxruntime runs inside it
STAGES = {
    "decode (read_image)": ("imageio.py", "read_image"),
    "session creation": ("upscaler.py", "_open"),  # Upscaler() and Upscaler.from_settings both open here
    # on worker threads, which cProfile does not follow: the main thread's wait for them
    "pixel conversions (YCbCr both ways, chroma resize, rounding)": ("upscaler.py", "_in_strips"),
    "model, tiling included": ("upscaler.py", "_upscale_luma"),
    "onnxruntime runs": ("onnxruntime_inference_collection.py", "run"),
    "encode and write": ("imageio.py", "write_image"),
}


def photo(width: int, height: int) -> Image.Image:
    """A smooth, tinted colour photo-like image (as the bench's end-to-end section makes)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    plane = 128 + 60 * np.sin(x / 37) * np.cos(y / 53) + rng.normal(0, 6, (height, width))
    tint = np.linspace(0.6, 1.0, width, dtype=np.float32)[None, :, None] * np.array([1.0, 0.85, 0.7], np.float32)
    return Image.fromarray(np.clip(plane[..., None] * tint, 0, 255).astype(np.uint8))


def wall(command: list[str], reps: int) -> float:
    times = []
    for _ in range(reps):
        tick = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - tick)
    return float(np.median(times))


def profiled_stages(args: list[str]) -> dict[str, float]:
    """Cumulative seconds per stage of one in-process run of the command."""
    from enhance_edge.apps.cli import main

    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    try:
        main(args, standalone_mode=False)
    finally:
        profile.disable()
    total = time.perf_counter() - started
    stats = pstats.Stats(profile).stats
    stages = {}
    for stage, (fragment, function) in STAGES.items():
        stages[stage] = sum(entry[3] for (path, _, name), entry in stats.items()
                            if name == function and path.endswith(fragment))
    stages["tiling and padding"] = stages["model, tiling included"] - stages["onnxruntime runs"]
    stages["in-process total"] = total
    return stages


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="896x1024", help="WIDTHxHEIGHT of the PNG")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--model", default="fast", help="a bundled model's name or an fp32 file; its int8 "
                                                         "file (MODEL-int8.onnx beside it) too where there is one")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    rows = {}
    with tempfile.TemporaryDirectory(prefix="enhance-edge-profile-") as tmp:
        source, target = Path(tmp) / "photo.png", Path(tmp) / "photo_x2.png"
        photo(width, height).save(source)
        startup = {"python -c pass": wall([sys.executable, "-c", "pass"], args.reps),
                   "python -c 'import enhance_edge.apps.cli'": wall(
                       [sys.executable, "-c", "import enhance_edge.apps.cli"], args.reps)}
        for precision, model in model_files(args.model).items():
            options = ["upscale", str(source), "-o", str(target), "--model", model, "--precision", precision,
                       "--threads", str(args.threads), "--overwrite"]
            command = wall([*upscale_command(), *options], args.reps)
            rows[precision] = {"command (fresh process)": command, **profiled_stages(options)}
    print(f"`enhance-edge upscale` of a {width}x{height} RGB PNG, --model {args.model}, {args.threads} threads, "
          f"{os.cpu_count()} CPUs; seconds (median of {args.reps} fresh processes; stages: one in-process "
          f"run under cProfile)\n")
    for name, seconds in startup.items():
        print(f"- {name}: {seconds:.3f} s")
    print("\n| stage | " + " | ".join(f"{precision} (s)" for precision in rows) + " |")
    print("|---" * (len(rows) + 1) + "|")
    for stage in rows["fp32"]:
        print(f"| {stage} | " + " | ".join(f"{row[stage]:.3f}" for row in rows.values()) + " |")
    if "int8" in rows:
        ratio = rows["fp32"]["command (fresh process)"] / rows["int8"]["command (fresh process)"]
        model_ratio = rows["fp32"]["onnxruntime runs"] / rows["int8"]["onnxruntime runs"]
        print(f"\nint8 speed-up: {ratio:.2f}x end to end, {model_ratio:.2f}x in the onnxruntime runs alone")


def model_files(model: str) -> dict[str, str]:
    """precision -> the file `upscale --model` runs it from: ``model``'s fp32 file (a bundled name's, or
    the file named), and its int8 file beside it where there is one (none ships: MODEL_CARD.md, "int8")."""
    fp32 = resolve_model(model, "fp32")
    int8 = int8_model_path(fp32)
    return {"fp32": str(fp32), **({"int8": str(int8)} if int8.is_file() else {})}


if __name__ == "__main__":
    main()
