"""Batch upscaling on a Ray cluster (Ray Data): the same outputs as `enhance-edge upscale`, spread over machines.

The driver plans the jobs exactly as the single-process command does (batch.plan_jobs), skips
outputs that already exist (outputs are written atomically, so an existing one is complete),
and hands the rest to a fixed pool of Ray Data actors in bundles of files. Each actor holds
one Upscaler and runs each file through batch.upscale_file, the single-file path of the
command line (read, check, upscale, tag, write), so names, formats, metadata and provenance
tags are the same; images over the per-actor memory budget (--max-memory) are tiled there.

Ray is imported only when a cluster run starts: the runtime install, the CLI's start-up and
a plain `upscale` never load it. Workers read inputs and write outputs by path, so on a
cluster of several machines both must lie on storage every node mounts at the same path.
"""

from __future__ import annotations

import csv
import enum
import importlib
import io
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .batch import Job, plan_jobs, printable, upscale_file
from .errors import EnhanceEdgeError, MissingExtraError
from .fileio import atomic_output, remove_stale_parts
from .imageio import DEFAULT_MAX_PIXELS, DEFAULT_QUALITY, probe_pixels
from .model import BUNDLED_MODELS, bundled_model_path, resolve_model
from .settings import CLUSTER_SUMMARY_NAME as SUMMARY_NAME
from .upscaler import DEFAULT_MAX_MEMORY, Upscaler

# Files per map_batches call: small faces share a call, so Ray's per-call cost is spread over
# many of them, while a photo has a call of its own. (Stacking faces into one onnxruntime run
# gains nothing on CPU: 32 faces in one run took 829 ms, one by one 804 ms.)
DEFAULT_BUNDLE_PIXELS = 2_000_000
_BUNDLES_PER_ACTOR = 4  # at least this many bundles per actor, so no actor idles while another has a backlog


class Status(enum.Enum):
    DONE = "done"
    SKIPPED = "skipped"  # the output already existed and overwriting was not asked for
    FAILED = "failed"
    NOT_RUN = "not run"  # the run stopped (Ctrl-C, the cluster went away) before this file's turn


@dataclass(frozen=True)
class FileStatus:
    source: Path
    target: Path
    status: Status
    reason: str = ""  # why it failed, naming the file, as the single-process command says it
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActorPlan:
    count: int
    cpus: float  # each actor's CPU request: a share of the cluster, less what Ray Data's own tasks need
    threads: int  # onnxruntime intra-op threads per actor: the cores of its share


@dataclass
class ClusterRun:
    files: list[FileStatus]
    summary: Path
    actors: ActorPlan
    startup_s: float  # connecting to (or starting) Ray
    run_s: float  # from the first job handed to Ray to the last result
    removed_parts: list[Path]  # temporaries that writers killed in an earlier run left, deleted at the start

    def count(self, status: Status) -> int:
        return sum(item.status is status for item in self.files)


def plan_actors(cpus: float, memory: float | None, max_memory: int, actors: int | None = None,
                threads: int | None = None) -> ActorPlan:
    """How many actors, the CPUs each asks Ray for, and their onnxruntime threads, from what the
    cluster has (``cpus``, ``memory`` in bytes, None when unknown).

    By default one actor per CPU, as many as the memory holds at ``max_memory`` each. The
    requests leave a whole CPU (half of a one-CPU cluster) unclaimed: actors that ask for
    every CPU starve the tasks Ray Data schedules beside them, and the job hangs. Requests
    are bookkeeping; each actor runs as many onnxruntime threads as cores its share holds.
    """
    if cpus <= 0:
        raise EnhanceEdgeError(f"the Ray cluster has no CPUs ({cpus:g}); enhance-edge's actors need some")
    fitting = int(memory // max_memory) if memory else None
    if fitting == 0:
        raise EnhanceEdgeError(f"--max-memory {max_memory / 2**20:g} MiB per actor is more than the Ray cluster's "
                               f"memory ({memory / 2**20:.0f} MiB): lower --max-memory")
    if actors is None:
        actors = max(1, int(cpus)) if fitting is None else max(1, min(int(cpus), fitting))
    elif actors < 1:
        raise EnhanceEdgeError(f"actors must be >= 1, got {actors}")
    elif fitting is not None and actors > fitting:
        raise EnhanceEdgeError(f"{actors} actors at --max-memory {max_memory / 2**20:g} MiB each need more than the "
                               f"Ray cluster's memory ({memory / 2**20:.0f} MiB): fewer actors or a lower --max-memory")
    reserve = min(1.0, cpus / 2)
    request = math.floor((cpus - reserve) / actors * 100) / 100 or 0.01
    return ActorPlan(actors, request, threads or max(1, round(cpus / actors)))


def bundle_jobs(jobs: list[Job], pixels: list[int], bundle_pixels: int, actors: int) -> list[list[Job]]:
    """Consecutive jobs grouped up to ``bundle_pixels`` input pixels (a larger image alone),
    smaller when that gives each actor at least a few bundles."""
    target = max(1, min(bundle_pixels, sum(pixels) // (actors * _BUNDLES_PER_ACTOR)))
    bundles: list[list[Job]] = []
    filled = 0
    for job, size in zip(jobs, pixels):
        if not bundles or filled + size > target:
            bundles.append([])
            filled = 0
        bundles[-1].append(job)
        filled += size
    return bundles


class UpscaleWorker:
    """A Ray Data actor: one Upscaler, and batch.upscale_file for each file of each bundle."""

    def __init__(self, model: str, precision: str, strength: float | str, provider: str, threads: int,
                 tile: int | None, max_memory: int, overwrite: bool, quality: int, max_pixels: int, folder: str):
        # Paths as the user gave them, relative ones too, so that messages name files as the command
        # does: relative to the driver's working folder, where the node mounts it at the same path.
        if os.path.isdir(folder):
            os.chdir(folder)
        self.upscaler = Upscaler(model, precision=precision, strength=strength, provider=provider, threads=threads,
                                 tile=tile, max_memory=max_memory)
        self.options = {"overwrite": overwrite, "quality": quality, "max_pixels": max_pixels}

    def __call__(self, batch: dict) -> dict:
        rows: dict[str, list[str]] = {"source": [], "target": [], "status": [], "reason": [], "warnings": []}
        for encoded in batch["jobs"]:
            for source, target in json.loads(encoded):
                warnings: list[str] = []
                try:
                    upscale_file(self.upscaler, Job(Path(source), Path(target)), warn=warnings.append, **self.options)
                    # SKIPPED too: the driver sent only outputs that did not exist, so this one was written
                    # by an earlier attempt at this bundle, on an actor that died before reporting it.
                    status, reason = Status.DONE, ""
                except EnhanceEdgeError as exc:
                    status, reason = Status.FAILED, str(exc)
                except Exception as exc:  # noqa: BLE001 - one bad file must not fail a job of a million
                    status, reason = Status.FAILED, f"{source}: unexpected {type(exc).__name__}: {exc}"
                for key, value in zip(rows, (source, target, status.value, reason, json.dumps(warnings))):
                    rows[key].append(value)
        return rows


def _import_ray():
    try:
        importlib.import_module("ray.data")
        return importlib.import_module("ray")
    except ImportError:
        raise MissingExtraError("--cluster", "cluster", "ray") from None


def _connect(ray, cluster: str, cpus: int | None) -> bool:
    """Start or join Ray as ``cluster`` says; True when this call started it (and must shut it down).
    A Ray this process already runs is used as it is."""
    if ray.is_initialized():
        return False
    options = {"include_dashboard": False, "log_to_driver": True}
    try:
        if cluster == "local":
            ray.init(address="local", num_cpus=cpus or os.cpu_count(), **options)
        else:
            if cpus is not None:
                raise EnhanceEdgeError(f"cpus={cpus} applies to a local cluster only; {cluster!r} has its own")
            ray.init(address=cluster, **options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EnhanceEdgeError(f"--cluster {cluster!r}: cannot start or reach Ray ({reason})") from None
    return True


def _model_for_actors(model: str, precision: str) -> tuple[str, str]:
    """The model the actors open: a bundled model by name in the precision the driver chose (so
    every machine runs the same file, whatever its CPU would pick for auto), or the file's path."""
    path = resolve_model(model, precision)
    if str(model) in BUNDLED_MODELS:
        return str(model), "fp32" if path == bundled_model_path(str(model), "fp32") else "int8"
    return str(path.resolve()), "auto"


def default_summary_path(jobs: list[Job], output: Path | None) -> Path:
    """The summary lies in the output folder, or, without one (outputs beside their inputs, or -o
    naming the one output file), in the deepest folder that holds every output."""
    if output is not None and all(job.target != output for job in jobs):
        return output / SUMMARY_NAME
    return Path(os.path.commonpath([job.target.parent.absolute() for job in jobs])) / SUMMARY_NAME


def write_summary(path: Path, files: list[FileStatus]) -> None:
    """source, target, status, reason: one CSV row per input, in the order of the plan, atomically."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["source", "target", "status", "reason"])
    for item in files:
        writer.writerow([item.source, item.target, item.status.value, item.reason])
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as handle:
        handle.write(text.getvalue().encode())


def upscale_on_cluster(inputs: list[Path], output: Path | None = None, *, cluster: str = "local",
                       recursive: bool = False, suffix: str | None = None, output_format: str | None = None,
                       quality: int = DEFAULT_QUALITY, overwrite: bool = False, tile: int | None = None,
                       max_memory: int = DEFAULT_MAX_MEMORY, max_pixels: int = DEFAULT_MAX_PIXELS,
                       model: str = "default", provider: str = "cpu", threads: int | None = None,
                       precision: str = "auto", strength: float | str = "auto", actors: int | None = None,
                       cpus: int | None = None, summary: Path | None = None,
                       bundle_pixels: int = DEFAULT_BUNDLE_PIXELS,
                       report: Callable[[FileStatus, int, int], None] | None = None) -> ClusterRun:
    """Upscale files, folders and patterns as `enhance-edge upscale` does, on Ray Data.

    ``cluster`` is "local" (start Ray on this machine, with ``cpus`` CPUs, default all),
    "auto" or an address (join a running cluster, as ``ray.init`` reads them). The other
    options are `upscale`'s. ``actors`` (default: from the cluster's CPUs and memory, see
    plan_actors) and ``threads`` (onnxruntime threads per actor) size the pool. ``report``
    is called in this process with each file's status and the counts finished and total.
    A file that fails is reported and the rest go on; an actor that dies is restarted and
    its files retried. The summary CSV (default: in the output folder) lists every input.
    """
    # Bad models, precisions, strengths and providers fail here, in one line, before Ray starts.
    scale = Upscaler(model, precision=precision, strength=strength, provider=provider, threads=1).scale
    jobs = plan_jobs(list(inputs), output, scale=scale, recursive=recursive, suffix=suffix,
                     output_format=output_format)
    if not jobs:
        raise EnhanceEdgeError(f"no images found in {printable(', '.join(map(str, inputs)))}"
                               f"{'' if recursive else ' (-r searches sub-folders)'}")
    stale = remove_stale_parts(job.target for job in jobs)
    summary = summary or default_summary_path(jobs, output)
    statuses: dict[Job, FileStatus] = {}
    finished = 0

    def record(job: Job, item: FileStatus) -> None:
        nonlocal finished
        statuses[job] = item
        finished += 1
        if report is not None:
            report(item, finished, len(jobs))

    pending = []
    for job in jobs:
        if job.problem is not None:
            record(job, FileStatus(job.source, job.target, Status.FAILED, f"{job.source}: {job.problem}"))
        elif job.target.exists() and not overwrite:
            record(job, FileStatus(job.source, job.target, Status.SKIPPED))
        else:
            pending.append(job)
    actor_model, actor_precision = _model_for_actors(model, precision)
    worker_options = {"model": actor_model, "precision": actor_precision, "strength": strength, "provider": provider,
                      "tile": tile, "max_memory": max_memory, "overwrite": overwrite, "quality": quality,
                      "max_pixels": max_pixels, "folder": os.getcwd()}

    ray = _import_ray()
    start = time.monotonic()
    started_here = _connect(ray, cluster, cpus)
    startup_s = time.monotonic() - start
    try:
        resources = ray.cluster_resources()
        plan = plan_actors(resources.get("CPU", 0), resources.get("memory"), max_memory, actors, threads)
        start = time.monotonic()
        if pending:
            by_name = {(str(job.source), str(job.target)): job for job in pending}
            try:
                for row in _run_pool(ray, pending, plan, worker_options, bundle_pixels):
                    job = by_name[(row["source"], row["target"])]
                    record(job, FileStatus(job.source, job.target, Status(row["status"]), row["reason"],
                                           tuple(json.loads(row["warnings"]))))
            except ray.exceptions.RayError as exc:  # e.g. a node without enhance-edge: its actors cannot start
                cause = [line.strip() for line in str(exc).splitlines() if line.strip()][-1:] or [type(exc).__name__]
                raise EnhanceEdgeError(f"the Ray job stopped ({cause[0]}); {summary} lists the files not run") from None
        run_s = time.monotonic() - start
    finally:
        files = [statuses.get(job) or FileStatus(job.source, job.target, Status.NOT_RUN) for job in jobs]
        write_summary(summary, files)
        if started_here:
            ray.shutdown()
    return ClusterRun(files, summary, plan, startup_s, run_s, stale)


def _run_pool(ray, jobs: list[Job], plan: ActorPlan, worker_options: dict, bundle_pixels: int):
    """Each file's result row as it comes back from the actor pool."""
    pixels = [probe_pixels(job.source) for job in jobs]
    bundles = bundle_jobs(jobs, pixels, bundle_pixels, plan.count)
    items = [{"jobs": json.dumps([[str(job.source), str(job.target)] for job in bundle])} for bundle in bundles]
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    results = dataset.map_batches(
        UpscaleWorker, batch_size=1, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=min(plan.count, len(items))), num_cpus=plan.cpus,
        memory=worker_options["max_memory"], fn_constructor_kwargs={**worker_options, "threads": plan.threads})
    yield from results.iter_rows()
