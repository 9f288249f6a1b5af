"""The enhance-edge command line: thin click commands over the library.

Commands parse options, call the library and report; every EnhanceEdgeError becomes one
line on stderr and exit status 1. This module holds the runtime's commands; training's, export's
and the benchmarks' live beside their code (train/cli.py, export/cli.py, benchmarks/cli.py) and
are imported only when they run or a help lists them, so `enhance-edge --help` and a command's
start load neither PyTorch nor, until a model runs, onnxruntime; a runtime-only install lists every
command and says which extra the others need.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import click

from .. import __version__
from .cli_support import CONTEXT_SETTINGS, LazyGroup, Quantity, reports_errors
from ..eval.degradation import CONDITIONS, condition_steps
from ..errors import DataError, EnhanceEdgeError, MissingExtraError
from ..io.imageio import DEFAULT_MAX_PIXELS, DEFAULT_QUALITY, OUTPUT_FORMATS
from ..core.gates import MIN_PSNR_VS_FP32_DB
from ..core.settings import CLUSTER_SUMMARY_NAME, DEFAULT_MAX_MEMORY, PRECISIONS
from .web.limits import Limits as WebLimits

THREADS_HELP = ("Threads for the model (onnxruntime intra-op) and the pixel conversions around it "
                "(default: one per core).")
PRECISION_HELP = ("For a bundled model: int8 (faster where the CPU has VNNI, AMX or ARM64 dot product; its output "
                  f"within {MIN_PSNR_VS_FP32_DB:g} dB PSNR of fp32's on every image `enhance-edge quantize` checked; "
                  "installed only where an int8 file is) or fp32. auto: int8 where its file is installed and this "
                  "CPU has those instructions (`enhance-edge models` says which), else fp32. A model file runs in "
                  "its own precision: auto, or that one.")
STRENGTH_HELP = ("For a model conditioned on the degradation level (the bundled ones): auto reads from each image "
                 "how noisy or JPEG-compressed it is; 0 treats it as clean (sharpest), 1 removes noise and JPEG "
                 "blocks the most, at the cost of fine detail.")
CONDITION_NAMES = tuple(CONDITIONS)  # docs/evaluation.md's named degraded-input conditions


def _parse_conditions(ctx, param, value):
    """Each --condition a docs/evaluation.md name, 'all', or a chain of steps, refused before any work."""
    for condition in (c for c in value if c != "all"):
        try:
            condition_steps(condition)
        except DataError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def _parse_strength(ctx, param, value):
    """"auto" or a number from 0 to 1, in the words the web server also answers with."""
    if value is None:
        return value
    from ..core.strength import parse_strength

    try:
        return parse_strength(value)
    except EnhanceEdgeError as exc:
        raise click.BadParameter(str(exc)) from None


# Above this a single image gets a progress bar (about 10 s of model time on a laptop core).
_LARGE_IMAGE_PIXELS = 2_000_000
# From this many input pixels on, a larger bundled model's run takes minutes on a laptop (a 12-megapixel
# photo: about a minute with default on several cores), and `upscale` points to the fast model.
_LONG_RUN_PIXELS = 8_000_000
# Where stderr is not a terminal (a log, a CI job) there is no bar: a progress line instead, at most
# this often; often enough to show a job is alive, rare enough to keep a log short.
PROGRESS_LINE_SECONDS = 5.0


# The commands of train/, export/ and benchmarks/, imported when they run or a help lists them.
LAZY_COMMANDS = {"train": "enhance_edge.train.cli.train", "plots": "enhance_edge.train.cli.plots",
                 "export": "enhance_edge.export.cli.export", "quantize": "enhance_edge.export.cli.quantize",
                 "bench": "enhance_edge.benchmarks.cli.bench"}


@click.group(cls=LazyGroup, lazy_subcommands=LAZY_COMMANDS, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="enhance-edge")
def main():
    """Upscale faces and photos x2 or x4 with a small super-resolution GAN, on onnxruntime alone.

    \b
    Quick start (bundled model, no PyTorch needed):
      enhance-edge upscale face.png -o face_x2.png
    Training and export need the extra:  pip install "enhance-edge[train]"
    """


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def _clear_bar_line(bar) -> None:
    """Messages would land on the progress bar's line: wipe it first (it redraws itself)."""
    if not bar.hidden:
        click.echo("\r\033[K", nl=False, err=True, color=True)


def _duration(seconds: float) -> str:
    """"42 s", "3 min 05 s", "2 h 07 min"."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class _ProgressLines:
    """`progress: 3/40 files, 12%, 25 s elapsed, about 3 min 05 s left` on stderr, at most every
    PROGRESS_LINE_SECONDS, for a log that has no progress bar. The remaining time is projected
    from the input pixels done, which is what the model's time follows."""

    def __init__(self, files: int, pixels: int):
        self.files, self.pixels = files, max(pixels, 1)
        self.files_done = self.pixels_done = 0
        self.tile: str | None = None  # "tile 3/40" while a tiled file runs
        self.start = self.last = time.monotonic()

    def advance(self, pixels: int = 0, files: int = 0) -> None:
        self.pixels_done += pixels
        self.files_done += files
        now = time.monotonic()
        if now - self.last < PROGRESS_LINE_SECONDS:
            return
        self.last = now
        fraction = min(self.pixels_done / self.pixels, 1.0)
        elapsed = now - self.start
        left = f", about {_duration(elapsed * (1 - fraction) / fraction)} left" if fraction > 0 else ""
        tile = f" ({self.tile} of the current one)" if self.tile else ""
        click.echo(f"progress: {self.files_done}/{self.files} files{tile}, {fraction:.0%}, {_duration(elapsed)} "
                   f"elapsed{left}", err=True)


def _tally(counts: dict[str, int]) -> str:
    """"done 3, failed 1, skipped 0": both batch reports' counts (keys: the statuses' values)."""
    return f"done {counts['done']}, failed {counts['failed']}, skipped {counts['skipped']}"


def _echo_file(status: str, target, reason: str | None, fail_on_skip: bool, done_line: str | None) -> None:
    """One input's line, as both batch reports (with and without --cluster) say it: an error or an
    existing output on stderr, ``done_line`` (None: none) on stdout for a file done."""
    from ..core.batch import printable

    if status == "failed":
        click.echo(f"error: {printable(reason or '')}", err=True)
    elif status == "skipped":
        click.echo(f"{'error' if fail_on_skip else 'skipped'}: {printable(str(target))} exists "
                   f"(--overwrite replaces it)", err=True)
    elif done_line is not None:
        click.echo(printable(done_line))


def _exit_if_failed(counts: dict[str, int], fail_on_skip: bool) -> None:
    """Exit status 1 when a file failed (or, with --fail-on-skip, was skipped)."""
    if counts["failed"] or (fail_on_skip and counts["skipped"]):
        sys.exit(1)


class _UpscaleReport:
    """`upscale`'s output as a batch goes: a line per file (JSON with --json), warnings and
    errors on stderr, the progress bar on a terminal, progress lines otherwise, the counts."""

    def __init__(self, bar, files: int, pixels: int, as_json: bool, fail_on_skip: bool):
        self.bar, self.as_json, self.fail_on_skip = bar, as_json, fail_on_skip
        self.lines = None if _stderr_is_terminal() else _ProgressLines(files, pixels)
        self.counts = {"done": 0, "failed": 0, "skipped": 0}

    def progress(self, pixels: int) -> None:
        self.bar.update(pixels)
        if self.lines is not None:
            self.lines.advance(pixels)

    def tiles(self, done: int, total: int) -> None:
        """Shown beside the bar (and in the progress lines) until the file is over: a large image is
        many tiles, and a bar of many files moves little in one."""
        self.bar.current_item = f"tile {done}/{total}" if total > 1 else None
        if self.lines is not None:
            self.lines.tile = self.bar.current_item

    def warning(self, message: str) -> None:
        from ..core.batch import printable

        _clear_bar_line(self.bar)
        click.echo(f"warning: {printable(message)}", err=True)

    def finished(self, result) -> None:
        self.counts[result.status.value] += 1
        self.tiles(0, 0)  # no tile count until the next file has one
        _clear_bar_line(self.bar)
        strength = "" if result.strength is None else f" (strength {result.strength:.2f})"
        _echo_file(result.status.value, result.output, result.error, self.fail_on_skip,
                   None if self.as_json else f"{result.input} -> {result.output}{strength}")
        if self.as_json:
            click.echo(json.dumps({"type": "file", **result.to_dict()}))
        if self.lines is not None:
            self.lines.advance(files=1)

    def _stopping(self) -> None:
        _clear_bar_line(self.bar)
        click.echo("stopping after the current tile...", err=True)

    @contextlib.contextmanager
    def stopping_cleanly(self):
        """Ctrl-C, SIGTERM or a closed stdout end the batch with the counts so far; a signal is
        acknowledged the moment it arrives."""
        from ..io.fileio import interrupt_notice

        try:
            with interrupt_notice(self._stopping):
                yield
        except KeyboardInterrupt:
            click.echo(f"\ninterrupted: {_tally(self.counts)}; no partial file was left", err=True)
            sys.exit(130)
        except BrokenPipeError:  # e.g. `| head -1`: the reader is gone, so stop as a pipe's writer does
            click.echo(f"stopped: standard output was closed; {_tally(self.counts)}; no partial file was left",
                       err=True)
            raise  # click silences the closed stream and exits 1

    def summary(self, seconds: float, run: dict) -> None:
        """The closing line (and JSON object); exit status 1 when a file failed (or, with
        --fail-on-skip, was skipped)."""
        if self.as_json:
            click.echo(json.dumps({"type": "summary", **self.counts, "seconds": round(seconds, 3), **run}))
        skipped_fail = self.fail_on_skip and self.counts["skipped"]
        click.echo(f"{_tally(self.counts)} in {seconds:.1f} s"
                   f"{'; skipped outputs fail the run (--fail-on-skip)' if skipped_fail else ''}", err=True)
        _exit_if_failed(self.counts, self.fail_on_skip)


def _no_images(inputs: list[Path], recursive: bool) -> EnhanceEdgeError:
    """Why `upscale` has nothing to do: no image files, or only the tagged outputs of an earlier run,
    which a folder's listing leaves out so that a rerun does not upscale its own outputs."""
    from ..core.batch import printable, tagged_outputs

    where = printable(", ".join(map(str, inputs)))
    tagged = tagged_outputs(inputs, recursive)
    if not tagged:
        return EnhanceEdgeError(f"no images found in {where}{'' if recursive else ' (-r searches sub-folders)'}")
    pattern = printable(str(tagged[0].parent / f"*{tagged[0].suffix}"))
    return EnhanceEdgeError(f"no images found in {where}: its {len(tagged)} image file(s) are outputs of an earlier "
                            f"run (tagged by enhance-edge), which a folder's listing leaves out; name the files to "
                            f"upscale them again, e.g. {pattern}")


def _faster_model_note(model: str, scale: int, pixels: int) -> str | None:
    """A pointer to the fast model for a run of a larger bundled one that will take minutes; None otherwise."""
    from ..core.model import BUNDLED_MODELS, bundled_scales

    if pixels < _LONG_RUN_PIXELS or model not in BUNDLED_MODELS or model.startswith("fast") \
            or scale not in bundled_scales("fast"):
        return None
    return (f"note: {pixels / 1e6:.0f} megapixels with model {model} can take minutes on a CPU; --model fast is "
            f"several times quicker, for a little less detail")


class _PathOrUri(click.Path):
    """A local path, or, for --cluster, a URI (or @URI, an input list) kept as the string it is:
    a Path would fold its //."""

    def convert(self, value, param, ctx):
        return value if "://" in str(value) else super().convert(value, param, ctx)


def _upscale_on_cluster(inputs: list[Path | str], output: Path | str | None, cluster: str, settings,
                        fail_on_skip: bool) -> None:
    """`upscale --cluster`: the same lines as without it, Ray's progress, a done/total line every few seconds."""
    from ..core.batch import printable
    from .cluster import Status, upscale_on_cluster

    start = time.monotonic()
    counts = {status.value: 0 for status in Status}
    last_progress = start

    def report(item, finished: int, total: int) -> None:
        nonlocal last_progress
        counts[item.status.value] += 1
        for warning in item.warnings:
            click.echo(f"warning: {printable(warning)}", err=True)
        _echo_file(item.status.value, item.target, item.reason, fail_on_skip, f"{item.source} -> {item.target}")
        if finished == total or time.monotonic() - last_progress > 5:
            last_progress = time.monotonic()
            click.echo(f"{finished}/{total} files", err=True)

    try:
        run = upscale_on_cluster(inputs, output, settings, cluster=cluster, report=report)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: {_tally(counts)}; no partial file was left, the summary lists the rest as not run",
                   err=True)
        sys.exit(130)
    if run.removed_parts:
        click.echo(f"removed {len(run.removed_parts)} partial file(s) that a killed earlier run left beside its "
                   f"outputs", err=True)
    click.echo(f"{_tally(counts)} in {time.monotonic() - start:.1f} s ({run.actors.count} actors, Ray start-up "
               f"{run.startup_s:.1f} s); summary: {run.summary}", err=True)
    _exit_if_failed(counts, fail_on_skip)


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=_PathOrUri(path_type=Path))
@click.option("-o", "--output", type=_PathOrUri(path_type=Path), default=None,
              help="Output file (one input, and a name with an image extension) or folder. "
                   "Default: NAME_xS.EXT beside each input, S being the model's scale.")
@click.option("-r", "--recursive", is_flag=True, help="Take images from sub-folders too (kept as sub-folders of -o).")
@click.option("--suffix", default=None,
              help='Added to each output name (default: "_xS" beside the inputs, S being the model\'s scale; '
                   'none in -o). Not with an -o that names the output file.')
@click.option("--format", "output_format", type=click.Choice(list(OUTPUT_FORMATS)), default=None,
              help="Output format (default: the input's, so JPEG stays JPEG).")
@click.option("--quality", type=click.IntRange(1, 100), default=DEFAULT_QUALITY, show_default=True,
              help="JPEG and lossy WebP quality.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (inputs are never overwritten).")
@click.option("--tile", type=click.IntRange(min=16), default=None,
              help="Run the model on tiles of N x N input pixels (default: tiles chosen from --max-memory).")
@click.option("--max-memory", type=Quantity("size", 1024, minimum="1M"), default=DEFAULT_MAX_MEMORY,
              show_default=f"{DEFAULT_MAX_MEMORY >> 30}G",
              help="Memory budget for one image, e.g. 800M or 2G; images that would exceed it are tiled. "
                   "Tiles bound only the model run: about 128M plus 64 bytes per input pixel (96 with "
                   "alpha) are needed whatever the budget, and an image that needs more gets a warning.")
@click.option("--max-pixels", type=Quantity("count", 1000), default=DEFAULT_MAX_PIXELS,
              show_default=f"{DEFAULT_MAX_PIXELS // 10**6}M",
              help="Refuse inputs with more pixels than this, e.g. 100M (guards against decompression bombs).")
@click.option("--model", default="default", show_default=True, metavar="NAME|PATH",
              help="A bundled model (see `enhance-edge models`: default, fast, default-x4) or an enhance-edge "
                   "ONNX file.")
@click.option("--provider", default="cpu", show_default=True,
              help="onnxruntime execution provider: cpu, cuda, ... or a full name like CPUExecutionProvider.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help=THREADS_HELP)
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help=PRECISION_HELP)
@click.option("--strength", default="auto", show_default=True, callback=_parse_strength, metavar="auto|0..1",
              help=STRENGTH_HELP)
@click.option("--cluster", default=None, metavar="local|auto|ADDRESS",
              help="Run on Ray Data (pip install \"enhance-edge[cluster]\"): local starts Ray on this machine, auto "
                   "or an address joins a running cluster. Same outputs; a rerun skips finished files; a summary "
                   f"CSV ({CLUSTER_SUMMARY_NAME}) beside the outputs lists every input's status. Inputs and -o "
                   "may then be URIs that pyarrow opens (file://, s3://, gs://; -o a folder), and an input "
                   "@FILE stands for the paths and URIs FILE lists, one a line.")
@click.option("--scale", type=click.Choice(["2", "4"]), default=None, callback=lambda c, p, v: v and int(v),
              help="The bundled model of this scale (default 2, or the smallest at or above --outscale); "
                   "for a model file, checks its scale.")
@click.option("--outscale", type=click.FloatRange(min=0, min_open=True), default=None, metavar="FACTOR",
              help="Final size as a factor of the input, e.g. 3 or 1.5: the model's result resized with Lanczos "
                   "(as Real-ESRGAN's --outscale).")
@click.option("--width", type=click.IntRange(min=1), default=None,
              help="Final width in pixels (with no --height the aspect ratio is kept); the model's result resized "
                   "with Lanczos. Not with --outscale.")
@click.option("--height", type=click.IntRange(min=1), default=None,
              help="Final height in pixels (with no --width the aspect ratio is kept). Not with --outscale.")
@click.option("--json", "as_json", is_flag=True,
              help="For scripts: one JSON object per file on stdout (input, output, status, error, seconds, model, "
                   "precision, strength, sizes), then a summary object; messages stay on stderr.")
@click.option("--fail-on-skip", is_flag=True,
              help="Exit with status 1 when an output was skipped because it exists (as when a file fails).")
@reports_errors
def upscale(inputs, output, cluster, as_json, fail_on_skip, **options):
    """Upscale images x2 (or x4, or to any size) with onnxruntime.

    \b
    Examples:
      enhance-edge upscale face.png                    # writes face_x2.png
      enhance-edge upscale face.png -o big.png
      enhance-edge upscale face.png --scale 4          # the x4 model: face_x4.png
      enhance-edge upscale face.png --outscale 3       # x4 model, then Lanczos to x3: face_x3.png
      enhance-edge upscale face.png --width 800        # 800 pixels wide, aspect kept: face_w800.png
      enhance-edge upscale photos/ -r -o upscaled/     # every image under photos/
      enhance-edge upscale "scans/*.tif" --format png  # quoted patterns work too
      enhance-edge upscale face.png --model fast       # the small edge model (`enhance-edge models`)
      enhance-edge upscale photos/ -o out/ --json      # for scripts: JSON lines on stdout

    Colour runs the model on luma; alpha, 16-bit gray, EXIF orientation, ICC profile and
    DPI are kept, and every output is tagged as upscaled by enhance-edge. Outputs are
    written atomically; existing ones are skipped unless --overwrite. A file that fails is
    reported in one line and the rest still run; the exit status is 0 only if none failed
    (and, with --fail-on-skip, none was skipped).
    """
    from ..core.batch import model_precision, plan_jobs, printable, strength_setting, unsearched_folders, upscale_jobs
    from ..core.upscale_settings import UpscaleSettings

    if not options["recursive"]:
        for folder, count in unsearched_folders([path for path in inputs if isinstance(path, Path)]).items():
            click.echo(f"note: {printable(str(folder))}: {count} sub-folder{'s' if count > 1 else ''} not searched "
                       f"(-r includes them)", err=True)
    settings = UpscaleSettings(**options)  # every other option: one for each field
    if cluster is not None:
        if as_json:
            raise click.UsageError("--json does not apply to --cluster yet: its summary CSV lists every input")
        _upscale_on_cluster(list(inputs), output, cluster, settings, fail_on_skip)
        return
    if uri := next((item for item in (*inputs, output) if isinstance(item, str)), None):
        raise click.UsageError(f"{uri!r}: URIs are read and written with --cluster only")
    from ..io.fileio import remove_stale_parts, terminate_as_interrupt
    from ..io.imageio import probe_pixels
    from ..core.upscaler import Upscaler

    start = time.monotonic()
    upscaler = Upscaler.from_settings(settings)
    jobs = plan_jobs(list(inputs), output, scale=upscaler.scale, recursive=settings.recursive, suffix=settings.suffix,
                     output_format=settings.output_format, output_size=upscaler.output_size)
    if not jobs:
        raise _no_images(list(inputs), settings.recursive)
    # What every file runs with, said once (a bundled name's precision "auto" is chosen per machine).
    run = {"model": upscaler.model_name, "precision": model_precision(upscaler),
           "strength": strength_setting(upscaler)}
    strength_note = "" if run["strength"] is None else f", strength {run['strength']}"
    size_note = "" if upscaler.output_size.is_model_scale else f", {upscaler.output_size.describe(upscaler.scale)}"
    click.echo(f"model {printable(run['model'])}, {run['precision']}{strength_note}{size_note}", err=True)
    removed = remove_stale_parts(job.target for job in jobs)
    if removed:
        click.echo(f"removed {len(removed)} partial file(s) that a killed earlier run left beside its outputs",
                   err=True)
    sizes = [probe_pixels(job.source) for job in jobs]
    if note := _faster_model_note(settings.model, upscaler.scale, sum(sizes)):
        click.echo(note, err=True)
    show_bar = (len(jobs) > 1 or sum(sizes) > _LARGE_IMAGE_PIXELS) and _stderr_is_terminal()
    # SIGTERM stops the batch as Ctrl-C does: the file being written is removed, not left half-done.
    with terminate_as_interrupt(), click.progressbar(length=max(sum(sizes), 1), label="upscaling", file=sys.stderr,
                                                     hidden=not show_bar, show_percent=True,
                                                     item_show_func=lambda tile: tile) as bar:
        report = _UpscaleReport(bar, len(jobs), sum(sizes), as_json, fail_on_skip)
        with report.stopping_cleanly():
            upscale_jobs(upscaler, jobs, sizes, report, settings)
    report.summary(time.monotonic() - start, run)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. 0.0.0.0 lets other machines use it (there is no login).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0 picks a free port.")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
@click.option("--max-upload", type=Quantity("size", 1024), default=WebLimits.max_upload_bytes,
              show_default=f"{WebLimits.max_upload_bytes >> 20}M",
              help="Largest image file accepted, e.g. 50M (HTTP 413 above).")
@click.option("--max-pixels", type=Quantity("count", 1000), default=WebLimits.max_pixels,
              show_default=f"{WebLimits.max_pixels // 10**6}M",
              help="Largest image accepted, in input pixels: the decompression-bomb guard (HTTP 422 above).")
@click.option("--max-queue", type=click.IntRange(min=0), default=WebLimits.max_waiting, show_default=True,
              help="Requests that may wait while one is upscaled; more are answered 503.")
@click.option("--max-memory", type=Quantity("size", 1024, minimum="1M"), default=DEFAULT_MAX_MEMORY,
              show_default=f"{DEFAULT_MAX_MEMORY >> 30}G",
              help="Memory budget for the image being upscaled; larger ones are tiled (only the model run is: "
                   "see `upscale --help`).")
@click.option("--provider", default="cpu", show_default=True, help="onnxruntime execution provider.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help=THREADS_HELP)
@reports_errors
def serve(host, port, open_browser, max_upload, max_pixels, max_queue, max_memory, provider, threads):
    """Upscale images in the browser: a local web page and a small HTTP API.

    \b
    Examples:
      enhance-edge serve --open                  # http://127.0.0.1:8000/
      curl -F image=@face.png http://127.0.0.1:8000/api/upscale -o face_x2.png
    Needs the extra:  pip install "enhance-edge[web]"
    """
    try:
        from .web.server import serve as run_server
    except ImportError as exc:
        raise MissingExtraError("serve", "web", exc.name or str(exc)) from None
    from ..core.upscale_settings import UpscaleSettings
    from .web.service import ModelCatalog, UpscaleService

    service = UpscaleService(WebLimits(max_upload, max_pixels, max_queue),
                             ModelCatalog(UpscaleSettings(provider=provider, threads=threads, max_memory=max_memory)))
    run_server(service, host, port, open_browser, echo=click.echo)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per model file) instead of a table.")
@reports_errors
def models(as_json):
    """List the bundled models: name, precision, scale, cost, file size, test PSNR and path.

    \b
    Use one by name:  enhance-edge upscale face.png --model fast
    Each file is a plain ONNX model usable from any onnxruntime binding, without
    enhance-edge: see docs/onnx-contract.md.
    """
    from ..core.model import PAIR_SUM_EXACT_WEIGHT_BITS, bundled_models, int8_instructions, int8_pair_sums

    found = bundled_models()
    if as_json:
        click.echo(json.dumps([m.to_dict() for m in found], indent=2))
        return
    name_width = max([len("name"), *(len(m.name) for m in found)]) + 2
    click.echo(f"{'name':<{name_width}}{'precision':<11}{'scale':>5}{'MACs/pixel':>12}{'size KiB':>10}"
               f"{'test PSNR':>11}  path")
    for m in found:
        macs = f"{m.macs_per_input_pixel:,}" if m.macs_per_input_pixel else "-"
        psnr = f"{m.test_psnr:.2f} dB" if m.test_psnr is not None else "-"
        click.echo(f"{m.name:<{name_width}}{m.precision:<11}{'x' + str(m.scale):>5}{macs:>12}"
                   f"{m.file_bytes / 1024:>10.0f}{psnr:>11}  {m.path}")
    instructions = int8_instructions()
    narrow = [m.name for m in found if m.weight_bits is not None and m.weight_bits <= PAIR_SUM_EXACT_WEIGHT_BITS]
    if instructions:
        click.echo(f"--precision auto on this CPU: int8 where an int8 file is listed (it has "
                   f"{', '.join(instructions)})")
    elif int8_pair_sums():
        click.echo(f"--precision auto on this CPU: int8 for {', '.join(narrow) or 'none'} (files of "
                   f"{PAIR_SUM_EXACT_WEIGHT_BITS}-bit weights, which its AVX2 kernels sum exactly), fp32 for the rest")
    else:
        click.echo("--precision auto on this CPU: fp32 (it has no VNNI, AMX or ARM64 dot product, with which int8 "
                   "runs exactly and faster)")


@main.group()
def data():
    """Get the data sets the commands read (e.g. `evaluate --data`, `train --data`)."""


@data.command("yale")
@click.option("--to", "folder", required=True, type=click.Path(path_type=Path),
              help="New (or empty) folder for the faces: yaleBNN/yaleBNN_P00A...png, as `--data` reads them.")
@click.option("--from", "archive", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A copy of CroppedYale.zip already on this machine, instead of downloading it.")
@click.option("--sha256", default=None, metavar="HEX",
              help="The archive's expected sha256; no digest is published, so without it the digest is printed "
                   "and not checked.")
@reports_errors
def yale(folder, archive, sha256):
    """The Cropped Extended Yale Face Database B: 2414 faces of 38 people, 168x192 gray.

    \b
    Downloads CroppedYale.zip from the Yale/UCSD face database page (or takes --from), checks
    its sha256 when one is given, and writes its lit faces as PNG (the PGM pixels unchanged;
    the Ambient images left out):
      enhance-edge data yale --to data/yale_b_cropped
      enhance-edge evaluate --data data/yale_b_cropped --split test
    Free for research use; publications must cite the two papers named in docs/evaluation.md.
    """
    from ..eval.yale import fetch_yale

    done = fetch_yale(folder, archive, sha256, report=lambda line: click.echo(line, err=True))
    click.echo(f"wrote {done.faces} faces of {done.subjects} subjects to {done.folder} (PNG, converted losslessly "
               f"from PGM); left out {done.left_out} other archive files (Ambient images, those marked .bad)")


def _parse_hr_size(ctx, param, value):
    if value == "native":
        return None
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT or 'native', got {value!r}") from None
    from ..eval.protocol import MIN_HR_SIDE, SSIM_WINDOW

    if width % 2 or height % 2 or min(width, height) < MIN_HR_SIDE:
        raise click.BadParameter(f"width and height must be even (the LR is half) and at least {MIN_HR_SIDE} "
                                 f"(SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} window), got {value!r}")
    return width, height


@main.command()
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of face images; one sub-folder per subject gives per-split scores.")
@click.option("--model", default="default", show_default=True, metavar="NAME|PATH",
              help="A bundled model (see `enhance-edge models`: default, fast, default-x4) or an enhance-edge "
                   "ONNX file.")
@click.option("--split", "splits", multiple=True, type=click.Choice(["train", "validation", "test", "all"]),
              help="Only these splits (repeatable). Default: every split the folder has.")
@click.option("--hr-size", default="92x112", show_default=True, callback=_parse_hr_size,
              help="HR size WIDTHxHEIGHT every face is resized to (the report's setting), "
                   "or 'native' to keep each image, cropped to even size.")
@click.option("--seed", type=int, default=None,
              help="Seed of the subject split of a folder other than the Yale faces (whose split is fixed): "
                   "the training run's --seed. Default: the seed the model records it was trained with, else 0.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help=THREADS_HELP)
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help=PRECISION_HELP)
@click.option("--condition", "conditions", multiple=True, default=("clean",), show_default=True,
              callback=_parse_conditions, metavar="NAME|STEPS",
              help=f"How the LR is made (docs/evaluation.md, 'Degraded inputs'): {', '.join(CONDITION_NAMES)}, "
                   "'all' (those five), or steps joined by '>' in the order they apply, e.g. 'noise=5>jpeg=50' "
                   "(blur=SIGMA on the HR, first; noise=SIGMA in 8-bit levels and jpeg=QUALITY on the bicubic "
                   "half; grid=0..7 before a jpeg step moves its 8x8 blocks off the image's corner, as in a crop "
                   "of a larger JPEG); repeatable.")
@click.option("--strength", default="auto", show_default=True, callback=_parse_strength, metavar="auto|0..1",
              help=STRENGTH_HELP)
@click.option("--scale", type=click.Choice(["2", "4"]), default=None, callback=lambda c, p, v: v and int(v),
              help="The bundled model of this scale (`--model default --scale 4` is default-x4).")
@click.option("--compare", "compared", multiple=True, metavar="NAME|PATH",
              help="Also score this model (repeatable), run as many times as reach --model's scale: "
                   "`--model default-x4 --compare default` scores x2 twice as 'default x2^2'.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table (an infinite PSNR is null).")
@reports_errors
def evaluate(data_dir, splits, hr_size, seed, conditions, compared, as_json, **model_options):
    """Score the model against interpolation on a folder of faces (the protocol of docs/evaluation.md).

    HR is each face resized with Lanczos (or cropped to even size), LR its bicubic half, or
    with --condition a degraded one (JPEG, noise, blur, camera) that every method upscales
    alike; all are scored against the clean HR. PSNR and SSIM are scikit-image's on the 8-bit
    outputs, averaged over images. Colour faces are upscaled in colour and scored on their
    luma (Y of YCbCr), with RGB PSNR beside.

    \b
    Every condition in one table (the results in README.md and MODEL_CARD.md):
      enhance-edge evaluate --data yale_b_cropped --split test --condition all
    Beyond the five: other levels and orders, as steps in the order they apply:
      enhance-edge evaluate --data yale_b_cropped --split test --condition 'noise=5>jpeg=50' \\
          --condition 'jpeg=50>noise=5' --condition 'blur=1.2>noise=5>jpeg=50'
    """
    import json

    from ..eval.dataset import trained_seed
    from ..eval.evaluate import evaluate_folder, finite_or_none
    from ..core.upscale_settings import UpscaleSettings
    from ..core.upscaler import Upscaler

    settings = UpscaleSettings(**model_options)  # model, threads, precision, strength, scale
    upscaler = Upscaler.from_settings(settings)
    others = {Path(name).stem: Upscaler.from_settings(settings.replace(model=name, scale=None)) for name in compared}
    seed = trained_seed(upscaler.info) if seed is None else seed
    # 'all' stands for the five named conditions, in its place among any others given
    names = tuple(dict.fromkeys(name for condition in conditions
                                for name in (CONDITION_NAMES if condition == "all" else (condition,))))
    results = {name: evaluate_folder(data_dir, upscaler, hr_size, tuple(splits) or None, seed=seed, condition=name,
                                     compare=others)
               for name in names}
    if as_json:
        click.echo(json.dumps(finite_or_none(results if len(names) > 1 else results[names[0]]), indent=2))
        return
    width = max(11, *(len(name) + 2 for name in names))
    for split in results[names[0]]:
        colour = "rgb_psnr" in results[names[0]][split]["model"]
        click.echo(f"{split} ({results[names[0]][split]['images']} images)")
        click.echo(f"  {'condition':<{width}}{'method':<20}{'PSNR (dB)':>10}{'SSIM':>8}{'vs Lanczos':>12}"
                   + (f"{'RGB PSNR':>10}" if colour else ""))
        for name in names:
            scores = results[name][split]
            for method in (method for method in scores if method != "images"):
                rgb = f"{scores[method]['rgb_psnr']:>10.2f}" if colour else ""
                gain = scores[method]["psnr"] - scores["lanczos"]["psnr"]
                click.echo(f"  {name:<{width}}{method:<20}{scores[method]['psnr']:>10.2f}{scores[method]['ssim']:>8.4f}"
                           f"{gain:>+12.2f}{rgb}")
