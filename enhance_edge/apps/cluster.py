"""Batch upscaling on a Ray cluster (Ray Data): the same outputs as `enhance-edge upscale`, spread over machines.

The driver plans the jobs exactly as the single-process command does (batch.plan_jobs), skips
outputs that already exist (outputs are written atomically, so an existing one is complete),
and hands the rest to a fixed pool of Ray Data actors in bundles of files. Each actor holds
one Upscaler and runs each file through batch.upscale_file, the single-file path of the
command line (read, check, upscale, tag, write), so names, formats, metadata and provenance
tags are the same; images over the per-actor memory budget (--max-memory) are tiled there.

Inputs and -o may also be URIs that pyarrow's filesystems open (file://, s3://, gs://, ...),
and an input @FILE stands for the paths and URIs FILE lists (enhance_edge.apps.uris): a job with a
URI at either end runs the same read, upscale, tags and encoding, and is written atomically
through pyarrow. Paths are read and written as paths, so on a cluster of several machines they
must lie on storage every node mounts at the same path. Ray is imported only when a cluster run
starts: the runtime install, the CLI's start-up and a plain `upscale` never load it.
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

from . import uris
from ..core.batch import Job, plan_jobs, printable, upscale_file
from ..errors import EnhanceEdgeError, MissingExtraError
from ..io.fileio import remove_stale_parts
from ..io.imageio import probe_pixels
from ..core.model import BUNDLED_MODELS, resolve_model
from ..core.settings import CLUSTER_SUMMARY_NAME as SUMMARY_NAME
from ..core.upscale_settings import UpscaleSettings
from ..core.upscaler import Upscaler
from .uris import Location

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
    source: Location
    target: Location
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
    summary: Location
    actors: ActorPlan
    startup_s: float  # connecting to (or starting) Ray
    run_s: float  # from the first job handed to Ray to the last result
    removed_parts: list[Location]  # temporaries that writers killed in an earlier run left, deleted at the start

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
    known_memory = f"{memory / 2**20:.0f} MiB" if memory else "unknown"  # said where fitting is not None
    if fitting == 0:
        raise EnhanceEdgeError(f"--max-memory {max_memory / 2**20:g} MiB per actor is more than the Ray cluster's "
                               f"memory ({known_memory}): lower --max-memory")
    if actors is None:
        actors = max(1, int(cpus)) if fitting is None else max(1, min(int(cpus), fitting))
    elif actors < 1:
        raise EnhanceEdgeError(f"actors must be >= 1, got {actors}")
    elif fitting is not None and actors > fitting:
        raise EnhanceEdgeError(f"{actors} actors at --max-memory {max_memory / 2**20:g} MiB each need more than the "
                               f"Ray cluster's memory ({known_memory}): fewer actors or a lower --max-memory")
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
    """A Ray Data actor: one Upscaler, and for each file of each bundle batch.upscale_file, on local
    paths or (a URI at either end) through uris.URI_FILES."""

    def __init__(self, settings: UpscaleSettings, folder: str):
        """``settings``: the run's, as the driver sent them (its model file, precision and scale chosen)."""
        # Paths as the user gave them, relative ones too, so that messages name files as the command
        # does: relative to the driver's working folder, where the node mounts it at the same path.
        if os.path.isdir(folder):
            os.chdir(folder)
        self.upscaler = Upscaler.from_settings(settings)
        self.options = {"overwrite": settings.overwrite, "quality": settings.quality,
                        "max_pixels": settings.max_pixels}

    def __call__(self, batch: dict) -> dict:
        rows: dict[str, list[str]] = {"source": [], "target": [], "status": [], "reason": [], "warnings": []}
        for encoded in batch["jobs"]:
            for source, target in json.loads(encoded):
                warnings: list[str] = []
                job = Job(uris.location(source), uris.location(target))
                try:
                    upscale_file(self.upscaler, job, warn=warnings.append, storage=uris.storage_for(job),
                                 **self.options)
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


def _settings_for_actors(settings: UpscaleSettings, scale: int) -> UpscaleSettings:
    """The settings the actors open their Upscaler with: the scale the driver worked out, and a
    bundled model by name in the precision the driver chose (so every machine runs the same file,
    whatever its CPU would pick for auto), or the file's path."""
    model = settings.model
    path = resolve_model(model, settings.precision, scale)
    if model is None or str(model) in BUNDLED_MODELS:
        precision = "fp32" if path == resolve_model(model, "fp32", scale) else "int8"
        return settings.replace(precision=precision, scale=scale)
    return settings.replace(model=str(path.resolve()), precision="auto", scale=scale)


def default_summary_path(jobs: list[Job], output: Location | None) -> Location:
    """The summary lies in the output folder, or, without one (outputs beside their inputs, or -o
    naming the one output file), in the deepest folder that holds every output; where outputs
    lie on several filesystems (URIs of different buckets), in the working folder."""
    if isinstance(output, str):
        return uris.join(output, SUMMARY_NAME)
    if output is not None and all(job.target != output for job in jobs):
        return output / SUMMARY_NAME
    targets = [job.target for job in jobs]
    if all(isinstance(target, Path) for target in targets):
        return Path(os.path.commonpath([target.parent.absolute() for target in targets])) / SUMMARY_NAME
    folder = uris.common_folder(targets)
    return Path(SUMMARY_NAME) if folder is None else uris.join(folder, SUMMARY_NAME)


def write_summary(where: Location, files: list[FileStatus]) -> None:
    """source, target, status, reason: one CSV row per input, in the order of the plan, atomically."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["source", "target", "status", "reason"])
    for item in files:
        writer.writerow([item.source, item.target, item.status.value, item.reason])
    uris.write_atomically(where, text.getvalue().encode())


def _plan(inputs: list[Location], output: Location | None, **naming) -> tuple[list[Job], dict[str, int]]:
    """batch.plan_jobs's jobs (uris.plan_jobs's where an input or -o is a URI), @FILE inputs
    replaced by the locations they list; and each URI input's size in bytes."""
    inputs = uris.expand_lists(inputs)
    if any(isinstance(where, str) for where in [*inputs, output]):
        return uris.plan_jobs(inputs, output, **naming)
    return plan_jobs(inputs, output, **naming), {}


def _survey_targets(jobs: list[Job]) -> tuple[set[Location], list[Location]]:
    """The targets that exist (complete: every write is atomic), and the temporaries that killed
    writers left beside them, deleted."""
    paths = [job.target for job in jobs if isinstance(job.target, Path)]
    removed = remove_stale_parts(paths)
    existing, removed_by_uri = uris.existing_and_stale([job.target for job in jobs if isinstance(job.target, str)])
    return existing | {path for path in paths if path.exists()}, removed + removed_by_uri


def _settled_on_the_driver(job: Job, existing: set[Location], overwrite: bool) -> FileStatus | None:
    """The status of a job that needs no actor: failed (the plan found a problem) or skipped (its
    output exists); None for a job to run."""
    if job.problem is not None:
        return FileStatus(job.source, job.target, Status.FAILED, f"{job.source}: {job.problem}")
    if job.target in existing and not overwrite:
        return FileStatus(job.source, job.target, Status.SKIPPED)
    return None


def upscale_on_cluster(inputs: list[Location], output: Location | None = None,
                       settings: UpscaleSettings | None = None, *, cluster: str = "local", actors: int | None = None,
                       cpus: int | None = None, summary: Location | None = None,
                       bundle_pixels: int = DEFAULT_BUNDLE_PIXELS,
                       report: Callable[[FileStatus, int, int], None] | None = None, **options) -> ClusterRun:
    """Upscale files, folders and patterns as `enhance-edge upscale` does, on Ray Data.

    Inputs and ``output`` may also be URIs (str; a Path is a local path), and an input
    "@FILE" stands for the paths and URIs FILE lists, one a line (see enhance_edge.apps.uris).
    ``cluster`` is "local" (start Ray on this machine, with ``cpus`` CPUs, default all),
    "auto" or an address (join a running cluster, as ``ray.init`` reads them). ``settings``
    are `upscale`'s options (or, without it, ``options`` are their fields: ``model="fast",
    tile=64``); its ``threads`` are onnxruntime's per actor. ``actors`` (default: from the
    cluster's CPUs and memory, see plan_actors) sizes the pool. ``report``
    is called in this process with each file's status and the counts finished and total.
    A file that fails is reported and the rest go on; an actor that dies is restarted and
    its files retried. The summary CSV (default: in the output folder) lists every input.
    """
    if settings is None:
        settings = UpscaleSettings(**options)
    elif options:
        raise TypeError(f"upscale_on_cluster() takes settings or their fields, not both ({', '.join(options)})")
    # Bad models, precisions, strengths, sizes and providers fail here, in one line, before Ray starts.
    upscaler = Upscaler.from_settings(settings.replace(threads=1))
    jobs, sizes = _plan(list(inputs), output, scale=upscaler.scale, recursive=settings.recursive,
                        suffix=settings.suffix, output_format=settings.output_format,
                        output_size=upscaler.output_size)
    if not jobs:
        raise EnhanceEdgeError(f"no images found in {printable(', '.join(map(str, inputs)))}"
                               f"{'' if settings.recursive else ' (-r searches sub-folders)'}")
    existing, stale = _survey_targets(jobs)
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
        if (settled := _settled_on_the_driver(job, existing, settings.overwrite)) is None:
            pending.append(job)
        else:
            record(job, settled)
    actor_settings = _settings_for_actors(settings, upscaler.scale)

    ray = _import_ray()
    start = time.monotonic()
    started_here = _connect(ray, cluster, cpus)
    startup_s = time.monotonic() - start
    try:
        resources = ray.cluster_resources()
        plan = plan_actors(resources.get("CPU", 0), resources.get("memory"), settings.max_memory, actors,
                           settings.threads)
        start = time.monotonic()
        if pending:
            by_name = {(str(job.source), str(job.target)): job for job in pending}
            try:
                for row in _run_pool(ray, pending, sizes, plan, actor_settings, bundle_pixels):
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


def _run_pool(ray, jobs: list[Job], sizes: dict[str, int], plan: ActorPlan, settings: UpscaleSettings,
              bundle_pixels: int):
    """Each file's result row as it comes back from the actor pool. A URI input is weighed by
    its size (``sizes``, in bytes), a file by the pixels its header gives."""
    pixels = [probe_pixels(job.source) if isinstance(job.source, Path)
              else sizes.get(job.source, 0) * uris.PIXELS_PER_BYTE for job in jobs]
    bundles = bundle_jobs(jobs, pixels, bundle_pixels, plan.count)
    items = [{"jobs": json.dumps([[str(job.source), str(job.target)] for job in bundle])} for bundle in bundles]
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    results = dataset.map_batches(
        UpscaleWorker, batch_size=1, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=min(plan.count, len(items))), num_cpus=plan.cpus,
        memory=settings.max_memory,
        fn_constructor_kwargs={"settings": settings.replace(threads=plan.threads), "folder": os.getcwd()})
    yield from results.iter_rows()
