"""Validation PSNR against measured latency of candidate generator sizes: which one to ship.

Every candidate (fp32 and int8 files of several generator sizes) and OpenCV's FSRCNN and ESPCN x2
are timed in one process, one after the other, on one input size and thread count (issue #7's:
512x512, 2 threads), so that their latencies compare. A candidate's quality is the validation
PSNR stored in its file (export: the checkpoint's; int8: what `enhance-edge quantize` measured),
so the test subjects stay unseen while a size is chosen; the peers, which store none, are scored
on the validation faces of a data folder (docs/evaluation.md's validation subjects).

    python -m enhance_edge.benchmarks.pareto small.onnx small-int8.onnx big.onnx ... --out docs/pareto.png

(the command is ``pareto`` in cli.py; this module measures and plots).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from enhance_edge.eval.dataset import PairSet, load_pairs
from enhance_edge.errors import DataError, MissingExtraError, ModelError
from enhance_edge.io.fileio import atomic_output
from enhance_edge.eval.protocol import REPORT_HR_SIZE, score

from ..export.timing import Timing, measure
from . import machine
from .backends import Backend, Skipped, onnx_metadata, ort_backend, peer_backend
from .goals import FSRCNN_GOAL_SIZE, FSRCNN_GOAL_THREADS, PSNR_GOAL_DB
from .run import DEFAULT_DATA_DIR, DEFAULT_PEERS_DIR, input_plane, upscale_all

PEERS_PLOTTED = {"fsrcnn": "OpenCV FSRCNN x2", "espcn": "OpenCV ESPCN x2"}


@dataclass(frozen=True)
class ParetoConfig:
    models: tuple[Path, ...]
    # Face folder whose validation subjects score the peers (and candidates that store no PSNR).
    data_dir: Path | None = DEFAULT_DATA_DIR
    peers_dir: Path = DEFAULT_PEERS_DIR
    size: tuple[int, int] = FSRCNN_GOAL_SIZE  # (height, width)
    threads: int = FSRCNN_GOAL_THREADS
    warmup: int = 2
    min_reps: int = 10
    min_time_s: float = 2.0

    def __post_init__(self):
        if not self.models:
            raise ModelError("no candidate models given")
        missing = [str(path) for path in self.models if not path.is_file()]
        if missing:
            raise ModelError(f"no model file at {', '.join(missing)}")
        if self.threads < 1 or len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"need threads >= 1 and a positive (height, width); got threads={self.threads}, "
                             f"size={self.size}")


def candidate_facts(path: Path) -> dict:
    """What a model file says about itself: label ("CHANNELSxBLOCKS PRECISION [QAT]"), size, multiply-adds
    and validation PSNR (None where it stores none)."""
    metadata = onnx_metadata(path)
    precision = metadata.get("precision", "fp32")
    generator = json.loads(metadata.get("generator_config", "{}"))
    if generator.get("body") == "rep":
        shape = f"{generator['channels']}x{generator['rep_convs']} rep"
    else:
        shape = f"{generator['channels']}x{generator['residual_blocks']}" if generator else path.stem
    shape += " cond" if generator.get("condition") == "degradation" else ""
    # Every file states its own: export the checkpoint's, `quantize` the int8 model's.
    psnr = json.loads(metadata.get("validation", "{}")).get("psnr")
    # A quantization-aware fine-tune of the same size is another candidate: say so in its label.
    qat = json.loads(metadata.get("train_config", "{}")).get("qat", False)
    return {"label": f"{shape} {precision}" + (" QAT" if qat else ""), "path": str(path), "precision": precision,
            "channels": generator.get("channels"), "residual_blocks": generator.get("residual_blocks"),
            "macs_per_input_pixel": machine.conv_macs_per_pixel(path), "file_bytes": path.stat().st_size,
            "validation_psnr": psnr, "psnr_source": None if psnr is None else "model metadata"}


def _timed(backend: Backend, plane: np.ndarray, config: ParetoConfig) -> Timing:
    payload = backend.prepare(plane[None])
    return measure(lambda: backend.run(payload), warmup=config.warmup, min_reps=config.min_reps,
                   min_time_s=config.min_time_s)


def _validation_psnr(backend: Backend, faces: PairSet) -> float:
    return score(list(faces.hr), list(upscale_all(backend, faces.lr)))["psnr"]


def _row_line(row: dict) -> str:
    psnr = "-" if row["validation_psnr"] is None else f"{row['validation_psnr']:.3f}"
    return f"{row['label']:<18} {row['median_ms']:8.2f} ms  validation PSNR {psnr}"


def pareto_front(rows: list[dict]) -> list[dict]:
    """The rows no other row beats on both axes (as fast or faster and as good or better, one of
    them strictly), fastest first; rows without a PSNR take no part."""
    scored = [r for r in rows if r["validation_psnr"] is not None]
    return sorted((r for r in scored if not any(
        o["median_ms"] <= r["median_ms"] and o["validation_psnr"] >= r["validation_psnr"]
        and (o["median_ms"], o["validation_psnr"]) != (r["median_ms"], r["validation_psnr"]) for o in scored)),
        key=lambda r: r["median_ms"])


def measure_candidates(config: ParetoConfig, report: Callable[[str], None] = lambda line: None) -> dict:
    """Latency of every candidate and peer in this process, validation PSNR, the Pareto front and
    which candidates meet both goals (as fast as FSRCNN x2, at least PSNR_GOAL_DB)."""
    height, width = config.size
    results: dict = {"size": [height, width], "threads": config.threads, "goal_psnr_db": PSNR_GOAL_DB,
                     "machine": machine.cpu_info(), "versions": machine.versions(), "models": [], "peers": [],
                     "skipped": {}}
    try:
        faces = load_pairs(config.data_dir, REPORT_HR_SIZE)["validation"] if config.data_dir else None
    except DataError as exc:
        faces = None
        results["skipped"]["validation faces"] = f"{exc}: peers and models without a stored PSNR are not scored"
    if faces is not None:
        results["validation_faces"] = len(faces)
    plane = input_plane(None, config.size)  # convolution time does not depend on the content
    for path in config.models:
        row = candidate_facts(path)
        backend = ort_backend(row["label"], path)(config.threads)
        if faces is not None:  # every candidate as the runtime runs it, fed its image (a file's own figure
            # is its checkpoint's, taken before export chose how "auto" reads the strength)
            row.update(validation_psnr=_validation_psnr(backend, faces),
                       psnr_source=f"measured on {len(faces)} validation faces")
        timing = _timed(backend, plane, config)
        row.update(median_ms=timing.median_s * 1e3, p90_ms=timing.p90_s * 1e3, reps=timing.reps)
        results["models"].append(row)
        report(f"{_row_line(row)}  ({path})")
    for name, label in PEERS_PLOTTED.items():
        try:
            backend = peer_backend(name, config.peers_dir)(config.threads)
        except Skipped as reason:
            results["skipped"][name] = str(reason)
            continue
        timing = _timed(backend, plane, config)
        row = {"label": label, "name": name, "median_ms": timing.median_s * 1e3, "p90_ms": timing.p90_s * 1e3,
               "reps": timing.reps, "validation_psnr": None if faces is None else _validation_psnr(backend, faces)}
        results["peers"].append(row)
        report(_row_line(row))
    fsrcnn_ms = next((p["median_ms"] for p in results["peers"] if p["name"] == "fsrcnn"), None)
    front = pareto_front(results["models"])
    for row in results["models"]:
        row["pareto"] = any(row is r for r in front)
        # On validation PSNR, which runs about 1 dB below the test subjects' for these models: a
        # stricter reading of the test-set goal, kept so that the test faces choose nothing.
        row["meets_goal"] = (None if fsrcnn_ms is None or row["validation_psnr"] is None
                             else row["median_ms"] <= fsrcnn_ms and row["validation_psnr"] >= PSNR_GOAL_DB)
    return results


def plot_pareto(results: dict, path: Path) -> None:
    """Validation PSNR against latency (log scale): candidates by precision, their Pareto front as
    a step line, the peers, the PSNR goal and FSRCNN x2's latency."""
    try:
        import matplotlib
        import matplotlib.ticker

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError:
        raise MissingExtraError("the Pareto plot", "bench", "matplotlib") from None
    figure, axes = plt.subplots(figsize=(9.5, 5))
    scored = [r for r in results["models"] if r["validation_psnr"] is not None]
    for precision in sorted({r["precision"] for r in scored}):
        rows = [r for r in scored if r["precision"] == precision]
        axes.scatter([r["median_ms"] for r in rows], [r["validation_psnr"] for r in rows],
                     label=f"enhance-edge {precision}", zorder=3)
    for row in scored:  # fp32 labels above their point, int8 below: the two precisions of a size sit close
        axes.annotate(row["label"], (row["median_ms"], row["validation_psnr"]), textcoords="offset points",
                      xytext=(4, 4) if row["precision"] == "fp32" else (4, -10), fontsize=7)
    front = [r for r in scored if r["pareto"]]
    front.sort(key=lambda r: r["median_ms"])
    if front:
        axes.step([r["median_ms"] for r in front], [r["validation_psnr"] for r in front], where="post",
                  color="gray", alpha=0.7, label="Pareto front")
    peers = [p for p in results["peers"] if p["validation_psnr"] is not None]
    if peers:
        axes.scatter([p["median_ms"] for p in peers], [p["validation_psnr"] for p in peers], color="black",
                     marker="s", label="OpenCV peers", zorder=3)
        for index, peer in enumerate(peers):  # FSRCNN and ESPCN are often close: one label above, one below
            axes.annotate(peer["label"], (peer["median_ms"], peer["validation_psnr"]), textcoords="offset points",
                          xytext=(4, 5 if index % 2 == 0 else -11), fontsize=7)
    axes.axhline(results["goal_psnr_db"], color="tab:green", linestyle="--", linewidth=1,
                 label=f"{results['goal_psnr_db']} dB (the goal, set on test faces)")
    fsrcnn = next((p for p in results["peers"] if p["name"] == "fsrcnn"), None)
    if fsrcnn:  # the latency goal: left of this line
        axes.axvline(fsrcnn["median_ms"], color="tab:red", linestyle=":", linewidth=1, label="FSRCNN x2 latency")
    height, width = results["size"]
    all_ms = [r["median_ms"] for r in scored + peers]
    axes.set(xscale="log", xlabel=f"median latency (ms), {height}x{width} input, {results['threads']} thread(s)",
             ylabel="validation PSNR (dB)", title="Validation PSNR against latency (x2, Yale validation subjects)")
    # Plain numbers on the log axis: "3x10^1" tick labels collide over one decade.
    axes.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.set_xticks([t for t in (10, 20, 30, 50, 100, 200, 300, 500, 1000, 2000, 5000)
                     if min(all_ms) / 1.5 <= t <= max(all_ms) * 1.5])
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.tight_layout()
    with atomic_output(path) as handle:
        figure.savefig(handle, format="png", dpi=110)
    plt.close(figure)


def write_pareto(results: dict, png: Path, json_path: Path) -> list[Path]:
    """The plot and the rows as JSON; returns what was written."""
    png.parent.mkdir(parents=True, exist_ok=True)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    plot_pareto(results, png)
    with atomic_output(json_path) as handle:
        handle.write(json.dumps(results, indent=1).encode())
    return [png, json_path]


if __name__ == "__main__":
    from .cli import pareto

    pareto(prog_name="python -m enhance_edge.benchmarks.pareto")
