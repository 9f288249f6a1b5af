"""enhance-edge bench: every backend side by side, in one run, on one machine.

Latency (median and p90 after warm-up) per input size and thread count, throughput on a batch
of report-size faces, quality on the Yale test subjects (docs/evaluation.md), achieved GFLOP/s against
this machine's measured matrix-product peaks, which kernels onnxruntime ran, model file sizes,
peak memory of a fresh process per backend, and ``enhance-edge upscale`` end to end (process
start and image I/O included). Backends that cannot run here are listed with the reason.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from enhance_edge.eval.dataset import PairSet, face_pair
from enhance_edge.errors import DataError, ModelError
from enhance_edge.core.model import (BUNDLED_MODELS, bundled_models, int8_runs_exactly_here, open_session,
                                     resolve_model)
from enhance_edge.eval.protocol import REPORT_HR_SIZE, YALE_TEST_SUBJECTS, score

from ..export.timing import measure
from . import SECTIONS, machine
from .backends import PEERS, Backend, BackendSpec, Skipped, backend_specs, onnx_metadata
from .goals import PREVIOUS_DEFAULT_GOAL_SIZE, PREVIOUS_DEFAULT_GOAL_THREADS, PREVIOUS_DEFAULT_LABEL

REPO = Path(__file__).resolve().parent.parent
# From the current folder (a checkout's root): where `enhance-edge data yale --to data/yale_b_cropped`
# puts the faces, and a folder of OpenCV's FSRCNN/ESPCN weights (docs/benchmarks.md, "Peers").
DEFAULT_DATA_DIR = Path("data") / "yale_b_cropped"
DEFAULT_PEERS_DIR = Path("peers")
QUALITY_BATCH = 64
# Benchmarked beside the main model when no other is named: the smaller bundled generator.
DEFAULT_COMPARE = "fast"


@dataclass(frozen=True)
class BenchConfig:
    fp32_model: Path
    int8_model: Path
    # Folder whose Yale test-subject faces (yaleB34..39, docs/evaluation.md) give quality and realistic inputs.
    data_dir: Path | None = DEFAULT_DATA_DIR
    peers_dir: Path = DEFAULT_PEERS_DIR
    # 512x512 at 2 threads is where issue #7 compares a model's latency with OpenCV's FSRCNN x2.
    sizes: tuple[tuple[int, int], ...] = ((56, 46), (256, 256), (512, 512), (1024, 1024))  # (height, width)
    threads: tuple[int, ...] = (1, 2)
    batch: int = 64
    warmup: int = 2
    min_reps: int = 10
    min_time_s: float = 2.0
    peak_n: int = 2048  # side of the matrix products that measure the peaks
    end_to_end_reps: int = 3
    sections: tuple[str, ...] = SECTIONS
    # (label, ONNX file) of other enhance-edge models, each timed and scored as backend ort-<label>.
    extra_models: tuple[tuple[str, Path], ...] = ()

    def __post_init__(self):
        unknown = set(self.sections) - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown sections {sorted(unknown)}; known: {', '.join(SECTIONS)}")
        if not self.sizes or not self.threads or min(self.threads) < 1 or self.batch < 1:
            raise ValueError(f"need sizes, threads >= 1 and batch >= 1; got sizes={self.sizes}, "
                             f"threads={self.threads}, batch={self.batch}")
        if min(min(size) for size in self.sizes) < 1:
            raise ValueError(f"sizes must be positive, got {self.sizes}")
        missing = [str(path) for _, path in self.extra_models if not path.is_file()]
        if missing:
            raise ModelError(f"no model file at {', '.join(missing)}")
        builtin = {spec.name for spec in backend_specs(self.fp32_model, self.int8_model, self.peers_dir)}
        names = [f"ort-{label}" for label, _ in self.extra_models]
        clashes = sorted({name for name in names if name in builtin or names.count(name) > 1})
        if clashes:
            raise ModelError(f"extra models would be named {', '.join(clashes)} more than once "
                             f"(labels {[label for label, _ in self.extra_models]})")

    def specs(self) -> list[BackendSpec]:
        return backend_specs(self.fp32_model, self.int8_model, self.peers_dir, self.extra_models)


def compare_models(names_or_paths: tuple[str, ...] = ()) -> tuple[tuple[str, Path], ...]:
    """(label, file) of the models to benchmark beside the main one.

    A bundled model's name gives each precision this install has (label NAME-PRECISION), a path
    its file (label: the file stem). Nothing named: the bundled fast model's installed files, or
    none at all, since an install may not carry it.
    """
    if not names_or_paths:
        return tuple(_installed_files(DEFAULT_COMPARE))
    found = []
    for item in names_or_paths:
        if item in BUNDLED_MODELS:
            installed = _installed_files(item)
            if not installed:
                raise ModelError(f"this install has no file of the bundled model {item!r}")
            found += installed
        else:
            path = resolve_model(item)
            found.append((path.stem, path))
    return tuple(found)


def _installed_files(name: str) -> list[tuple[str, Path]]:
    """(NAME-PRECISION, file) of each precision of a bundled model that this install has."""
    return [(f"{m.name}-{m.precision}", Path(m.path)) for m in bundled_models() if m.name == name]


@dataclass
class Faces:
    """The Yale test-subject faces of a folder, as docs/evaluation.md's HR/LR pairs."""

    hr: list[np.ndarray]
    lr: list[np.ndarray]

    @classmethod
    def load(cls, data_dir: Path | None) -> Faces:
        if data_dir is None or not data_dir.is_dir():
            raise DataError(f"no face folder at {str(data_dir)!r}: make one with `enhance-edge data yale --to "
                            f"{DEFAULT_DATA_DIR}`, or name one with --data")
        extensions = Image.registered_extensions()
        files = sorted(p for p in data_dir.rglob("*") if p.is_file() and p.suffix.lower() in extensions
                       and p.name.split("_")[0] in YALE_TEST_SUBJECTS)
        if not files:
            raise DataError(f"no Yale test-subject faces ({', '.join(YALE_TEST_SUBJECTS)}) under {data_dir}")
        pairs = [face_pair(path, REPORT_HR_SIZE) for path in files]
        return cls([hr for hr, _ in pairs], [lr for _, lr in pairs])


def input_plane(faces: Faces | None, size: tuple[int, int]) -> np.ndarray:
    """An 8-bit input of ``size`` (height, width): a test face resized, or a smooth synthetic image."""
    height, width = size
    if faces is not None:
        return np.asarray(Image.fromarray(faces.hr[0]).resize((width, height), Image.Resampling.LANCZOS))
    y, x = np.mgrid[0:height, 0:width]
    return (127.5 + 100 * np.sin(x / 7.0) * np.cos(y / 11.0)).astype(np.uint8)


def _peak_rss_child(config: BenchConfig, name: str, plane: np.ndarray, threads: int, queue) -> None:
    spec = next(s for s in config.specs() if s.name == name)
    spec.make(threads).upscale(plane[None])
    try:  # this process's own high-water mark; ru_maxrss would include the parent's, kept across fork+exec
        status = Path("/proc/self/status").read_text()
        queue.put(int(status.split("VmHWM:")[1].split()[0]) / 1024)
    except (OSError, IndexError):
        queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 2**20))


def peak_rss_mib(config: BenchConfig, name: str, plane: np.ndarray, threads: int) -> float:
    """Peak resident memory of a fresh process that builds one backend and upscales ``plane`` once
    (interpreter and imports included: what a user's process would hold)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_peak_rss_child, args=(config, name, plane, threads, queue))
    process.start()
    process.join()
    if process.exitcode:
        raise RuntimeError(f"the {name} memory probe exited with status {process.exitcode}")
    return queue.get()


def upscale_command() -> list[str]:
    """The user's command: the installed console script, else the same entry point through Python."""
    script = shutil.which("enhance-edge")
    return [script] if script else [sys.executable, "-c", "from enhance_edge.apps.cli import main; main()"]


def end_to_end(config: BenchConfig, plane: np.ndarray, threads: int) -> dict:
    """Wall time of ``enhance-edge upscale`` on a colour PNG, per precision, process start included: of
    the main model, or where it has no int8 file, of the first compared model that has both."""
    fp32_model, int8_model = next(((fp32, int8) for label, fp32, int8 in _int8_pairs(config) if int8.is_file()),
                                  (config.fp32_model, config.int8_model))
    results = {"image": f"{plane.shape[1]}x{plane.shape[0]} RGB PNG", "threads": threads, "model": fp32_model.name,
               "runs": {}}
    with tempfile.TemporaryDirectory(prefix="enhance-edge-e2e-") as tmp:
        source, target = Path(tmp) / "photo.png", Path(tmp) / "photo_x2.png"
        tint = np.linspace(0.6, 1.0, plane.shape[1], dtype=np.float32)[None, :, None] * [1.0, 0.85, 0.7]
        Image.fromarray((plane[..., None] * tint).astype(np.uint8)).save(source)
        for precision, path in (("fp32", fp32_model), ("int8", int8_model)):
            if not path.is_file():
                continue
            # --precision: each file as it is, whatever "auto" would choose on this CPU
            command = [*upscale_command(), "upscale", str(source), "-o", str(target), "--model", str(path),
                       "--precision", precision, "--threads", str(threads)]
            times = []
            for _ in range(config.end_to_end_reps):
                target.unlink(missing_ok=True)
                tick = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True)
                times.append(time.perf_counter() - tick)
                if done.returncode:
                    raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-300:]}")
            results["runs"][precision] = {"median_s": float(np.median(times)), "times_s": times}
    return results


def _time_backend(config: BenchConfig, spec: BackendSpec, backend: Backend, threads: int, faces: Faces | None,
                  macs: int | None, peak: dict, report: Callable[[str], None]) -> tuple[list, list]:
    """Latency rows (one per input size) and the batch throughput of one backend at one thread count."""
    latency, throughput = [], []
    if "latency" in config.sections:
        for size in config.sizes:
            payload = backend.prepare(input_plane(faces, size)[None])
            timing = measure(lambda: backend.run(payload), warmup=config.warmup, min_reps=config.min_reps,
                             min_time_s=config.min_time_s)
            row = {"backend": spec.name, "family": spec.family, "precision": spec.precision, "size": list(size),
                   "threads": threads, "median_ms": timing.median_s * 1e3, "p90_ms": timing.p90_s * 1e3,
                   "reps": timing.reps}
            if spec.family == "enhance-edge":
                row["gflops"] = 2 * macs * size[0] * size[1] / timing.median_s / 1e9
                row["peak_fraction"] = row["gflops"] / peak["int8_gops" if spec.precision == "int8" else "fp32_gflops"]
            latency.append(row)
            report(f"{spec.name:<16} {threads}T {size[0]}x{size[1]}: median {row['median_ms']:.2f} ms, "
                   f"p90 {row['p90_ms']:.2f} ms ({timing.reps} reps)")
    if "throughput" in config.sections:
        batch_lr = (np.stack([faces.lr[i % len(faces.lr)] for i in range(config.batch)]) if faces is not None
                    else np.stack([input_plane(None, config.sizes[0])] * config.batch))
        payload = backend.prepare(batch_lr)
        timing = measure(lambda: backend.run(payload), warmup=1, min_reps=max(3, config.min_reps // 3),
                         min_time_s=config.min_time_s)
        throughput.append({"backend": spec.name, "threads": threads, "batch": config.batch,
                           "size": list(batch_lr.shape[1:]), "images_per_s": config.batch / timing.median_s})
        report(f"{spec.name:<16} {threads}T batch {config.batch}: {throughput[-1]['images_per_s']:.1f} images/s")
    return latency, throughput


def against_release(config: BenchConfig, specs: list[BackendSpec], faces: Faces | None,
                    report: Callable[[str], None] = lambda line: None) -> dict:
    """Median latency of the main model's files and of the release it replaced at issue 26's size and
    threads, each file in its own session and all called in turns, round after round (config.min_reps
    rounds after one of warm-up): a machine that slows down slows every file alike. Timed one after
    the other, minutes apart, the same files gave 0.21-0.29x on a shared 2-core machine."""
    report(f"the main model's files against {PREVIOUS_DEFAULT_LABEL}, called in turns "
           f"({PREVIOUS_DEFAULT_GOAL_SIZE[0]}x{PREVIOUS_DEFAULT_GOAL_SIZE[1]}, {PREVIOUS_DEFAULT_GOAL_THREADS}T)")
    wanted = ("ort-fp32", "ort-int8", f"ort-{PREVIOUS_DEFAULT_LABEL}")
    calls = {}
    for spec in (spec for spec in specs if spec.name in wanted):
        try:
            backend = spec.make(PREVIOUS_DEFAULT_GOAL_THREADS)
        except Skipped:
            continue  # the latency section has listed why
        calls[spec.name] = (backend, backend.prepare(input_plane(faces, PREVIOUS_DEFAULT_GOAL_SIZE)[None]))
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_index in range(1 + config.min_reps):
        for name, (backend, payload) in calls.items():
            tick = time.perf_counter()
            backend.run(payload)
            if round_index:
                times[name].append(time.perf_counter() - tick)
    return {"size": list(PREVIOUS_DEFAULT_GOAL_SIZE), "threads": PREVIOUS_DEFAULT_GOAL_THREADS,
            "rounds": config.min_reps, "median_ms": {name: float(np.median(t)) * 1e3 for name, t in times.items()}}


def upscale_all(backend: Backend, lr: np.ndarray) -> np.ndarray:
    """Every plane of ``lr`` upscaled, in batches that keep memory bounded."""
    return np.concatenate([backend.upscale(lr[i:i + QUALITY_BATCH]) for i in range(0, len(lr), QUALITY_BATCH)])


def _quality(faces: Faces, outputs: dict[str, np.ndarray]) -> dict:
    """docs/evaluation.md scores on the test faces, and each network's largest 8-bit difference from ORT fp32
    (PyTorch and OpenCV run the same weights, so it shows they compute the same thing)."""
    scores = {name: score(faces.hr, list(out)) for name, out in outputs.items()}
    reference = outputs.get("ort-fp32")
    for name in ("pytorch-fp32", "opencv-dnn-fp32", "ort-int8", "opencv-dnn-int8"):
        if reference is not None and name in outputs:
            diff = np.abs(outputs[name].astype(np.int16) - reference.astype(np.int16))
            scores[name]["max_diff_vs_ort_fp32"] = int(diff.max())
    return {"split": "test", "subjects": list(YALE_TEST_SUBJECTS), "faces": len(faces.hr), "scores": scores}


def _int8_pairs(config: BenchConfig) -> list[tuple[str, Path, Path]]:
    """(label, fp32, int8) of the main model and of the extra models installed in both precisions
    (labels NAME-fp32, NAME-int8)."""
    paths = dict(config.extra_models)
    pairs = [("ort", config.fp32_model, config.int8_model)]
    return pairs + [(f"ort-{label[:-5]}", path, paths[f"{label[:-5]}-int8"]) for label, path in config.extra_models
                    if label.endswith("-fp32") and f"{label[:-5]}-int8" in paths]


def int8_per_image(fp32_model: Path, int8_model: Path, faces: Faces) -> dict | None:
    """`quantize`'s gate table for an installed int8 model against its fp32 one, as results.json keeps
    it (GateResult.to_dict): per set, int8's output against fp32's (the lowest image PSNR) and both
    against the ground truth (mean and worst loss), on the Yale test faces and the images calibration
    never sees; int8 computed as exact int8 arithmetic computes it (see export.quantize.scoring_session),
    every image in int8 as `--precision auto` runs it wherever it chooses int8; None when either file
    is missing."""
    from ..export.gate import GateResult
    from ..export.calibration_mix import NATURAL_GATE_SETS
    from ..export.quantize import (gate_sets, gate_table, scoring_session,
                                   set_outputs, with_degraded)

    if not (fp32_model.is_file() and int8_model.is_file()):
        return None
    _, info = open_session(fp32_model)
    # a conditioned model's faces also degraded, as quantize gates it
    test = with_degraded(PairSet([f"yale test #{i}" for i in range(len(faces.hr))], np.stack(faces.hr),
                                 np.stack(faces.lr)), info)
    gates = gate_sets(info, test, faces_name="yale test faces")
    fp32, int8 = set_outputs(scoring_session(fp32_model), gates), set_outputs(scoring_session(int8_model), gates)
    return GateResult(gate_table(fp32, int8, gates, ("yale test faces", *NATURAL_GATE_SETS))).to_dict()


def run_benchmark(config: BenchConfig, report: Callable[[str], None] = lambda line: None) -> dict:
    """Run every section of the benchmark and return the results (see RESULTS.md for their meaning)."""
    started = time.time()
    results: dict = {"schema": "enhance-edge-bench/1", "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                     "load_average_before": list(os.getloadavg()), "machine": machine.cpu_info(),
                     "versions": machine.versions(), "config": _jsonable(config)}
    specs = config.specs()
    skipped: dict[str, str] = {}
    try:
        faces = Faces.load(config.data_dir)
    except DataError as exc:
        faces = None
        results["faces_skipped"] = f"{exc}: quality is not measured and inputs are synthetic"
        report(f"note: {results['faces_skipped']}")
    results["models"] = {"fp32": _file_facts(config.fp32_model),
                         "int8": {**_file_facts(config.int8_model), "runs_under_auto": config.int8_model.is_file()
                                  and int8_runs_exactly_here(config.int8_model)},
                         **{name: _file_facts(config.peers_dir / PEERS[name][0]) for name in PEERS},
                         **{f"ort-{label}": _file_facts(path) for label, path in config.extra_models}}
    results["quantization"] = _quantization_record(config.int8_model)
    macs = {path: machine.conv_macs_per_pixel(path) for path in dict.fromkeys(s.model for s in specs if s.model)}
    results["roofline"] = {"macs_per_input_pixel": macs[config.fp32_model], "peaks": {},
                           "extra_models": {f"ort-{label}": macs[path] for label, path in config.extra_models}}
    report(f"model: {macs[config.fp32_model]} multiply-adds per input pixel; measuring this machine's peaks")
    for threads in config.threads:
        peak = results["roofline"]["peaks"][str(threads)] = machine.matmul_peaks(threads, config.peak_n,
                                                                                   config.min_time_s)
        report(f"peak {threads}T: fp32 {peak['fp32_gflops']:.1f} GFLOP/s, int8 {peak['int8_gops']:.1f} GOP/s")
    most = max(config.threads)
    results["latency"], results["throughput"], outputs = [], [], {}
    # One backend at a time, all its measurements before the next is built: OpenCV 5.0 computes
    # garbage with ONNX nets made after a dnn_superres (TensorFlow) model was loaded in the process.
    # Timing backends in turns instead (A, B, C, A, ...) was tried and measured worse on 2 cores:
    # each call then starts with another library's threads still spinning and its data in the
    # caches (256x256, 2 threads: ORT int8 56 ms alone, 68-99 ms in turns; PyTorch 391 / 511-527).
    for spec in specs:
        for threads in sorted(config.threads):
            try:
                backend = spec.make(threads)
            except Skipped as reason:
                skipped[spec.name] = str(reason)
                report(f"skipped {spec.name}: {reason}")
                break
            latency, throughput = _time_backend(config, spec, backend, threads, faces, macs.get(spec.model),
                                                results["roofline"]["peaks"][str(threads)], report)
            results["latency"] += latency
            results["throughput"] += throughput
            if threads == most and "quality" in config.sections and faces is not None:
                outputs[spec.name] = upscale_all(backend, np.stack(faces.lr))
            del backend
    if outputs:
        report(f"quality on {len(faces.hr)} Yale test faces")
        results["quality"] = _quality(faces, outputs)
        report("int8's per-image loss on a mixed set (Yale test faces, photos, LFW faces, synthetic images)")
        results["int8_per_image"] = {label: int8_per_image(fp32, int8, faces)
                                     for label, fp32, int8 in _int8_pairs(config)}
    largest = max(config.sizes, key=lambda s: s[0] * s[1])
    if "memory" in config.sections:
        report(f"peak memory of a fresh process per backend ({largest[0]}x{largest[1]}, {most}T)")
        plane = input_plane(faces, largest)
        results["peak_rss_mib"] = {s.name: peak_rss_mib(config, s.name, plane, most)
                                   for s in specs if s.name not in skipped}
    if "end_to_end" in config.sections:
        report(f"enhance-edge upscale end to end on a {largest[1]}x{largest[0]} image")
        results["end_to_end"] = end_to_end(config, input_plane(faces, largest), most)
    if "release" in config.sections and f"ort-{PREVIOUS_DEFAULT_LABEL}" in {spec.name for spec in specs}:
        results["against_release"] = against_release(config, specs, faces, report)
    if "kernels" in config.sections:
        size = min(config.sizes, key=lambda s: abs(s[0] * s[1] - 256 * 256))
        report(f"which kernels onnxruntime runs ({size[0]}x{size[1]}, 1 thread)")
        results["kernels"] = {"size": list(size), "operators": {}, "instructions": {}}
        for precision, path in (("fp32", config.fp32_model), ("int8", config.int8_model)):
            if path.is_file():
                results["kernels"]["operators"][precision] = machine.operator_profile(path, size, 1)
                results["kernels"]["instructions"][precision] = machine.hot_instructions(path, size)
    results["skipped"] = skipped
    results["load_average_after"] = list(os.getloadavg())
    results["duration_s"] = time.time() - started
    return results


def _file_facts(path: Path) -> dict:
    return {"path": str(path), "bytes": path.stat().st_size if path.is_file() else None}


def _quantization_record(int8_model: Path) -> dict | None:
    """The recipe comparison `enhance-edge quantize` stored in the int8 model, if there is one."""
    if not int8_model.is_file():
        return None
    metadata = onnx_metadata(int8_model)
    return json.loads(metadata["quantization"]) if "quantization" in metadata else None


def _jsonable(value):
    """Configs as JSON values: paths as strings, also inside tuples (extra_models)."""
    if isinstance(value, BenchConfig):
        return {key: _jsonable(item) for key, item in value.__dict__.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(item) for item in value]
    return str(value) if isinstance(value, Path) else value
