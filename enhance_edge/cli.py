"""The enhance-edge command line: thin click commands over the library.

Commands parse options, call the library and report; every EnhanceEdgeError becomes one
line on stderr and exit status 1. Commands that need PyTorch import it lazily, so the
runtime install (no torch) still runs `upscale` and says how to get the rest.
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
import time
from pathlib import Path

import click

from . import __version__
from .errors import EnhanceEdgeError, MissingExtraError
# Ray-free: the cluster module imports Ray only when a --cluster run starts.
from .cluster import SUMMARY_NAME as CLUSTER_SUMMARY_NAME
from .imageio import DEFAULT_MAX_PIXELS, DEFAULT_QUALITY, OUTPUT_FORMATS
# export's and quantize's defaults, from the runtime package: this module imports nothing of
# train/, export/ or benchmarks/ at start (a test checks it), so it starts where only the runtime is.
from .limits import MAX_PSNR_LOSS_DB, PARITY_TOLERANCE
from .model import PRECISIONS
from .upscaler import DEFAULT_MAX_MEMORY, parse_strength
# Framework-free: the web extra itself is imported by `serve` only.
from .web.service import Limits as WebLimits, ModelCatalog, UpscaleService

PRECISION_HELP = (f"For a bundled model: int8 (faster, within {MAX_PSNR_LOSS_DB:g} dB of fp32 on validation faces) "
                  "or fp32. auto: int8 where it is installed and this CPU sums int8 exactly (VNNI/AMX or ARM64), "
                  "else fp32. A model file is used as it is, so with one only auto is accepted.")
STRENGTH_HELP = ("For a model conditioned on the degradation level (the bundled ones): auto reads from each image "
                 "how noisy or JPEG-compressed it is; 0 treats it as clean (sharpest), 1 removes noise and JPEG "
                 "blocks the most, at the cost of fine detail.")
# PROTOCOL.md's named degraded-input conditions (enhance_edge.degradation.CONDITIONS, listed here so
# that the CLI imports no more than it needs at start).
CONDITION_NAMES = ("clean", "jpeg75", "noise3", "blur", "camera")


def _parse_strength(ctx, param, value):
    """"auto" or a number from 0 to 1, in the words the web server also answers with."""
    if value is None:
        return value
    try:
        return parse_strength(value)
    except EnhanceEdgeError as exc:
        raise click.BadParameter(str(exc)) from None


# Above this a single image gets a progress bar (about 10 s of model time on a laptop core).
_LARGE_IMAGE_PIXELS = 2_000_000
# Where stderr is not a terminal (a log, a CI job) there is no bar: a progress line instead, at most
# this often; often enough to show a job is alive, rare enough to keep a log short.
PROGRESS_LINE_SECONDS = 5.0


def _needs_train_extra(feature: str):
    """Fail in one line, naming the extra to install, when torch & co. are missing."""
    for module in ("torch", "onnx", "skimage"):
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtraError(feature, "train", module) from None


def reports_errors(command):
    """Turn library errors into one line on stderr and exit status 1, no traceback."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except EnhanceEdgeError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="enhance-edge")
def main():
    """Upscale faces x2 with a small super-resolution GAN, on onnxruntime alone.

    \b
    Quick start (bundled model, no PyTorch needed):
      enhance-edge upscale face.png -o face_x2.png
    Training and export need the extra:  pip install "enhance-edge[train]"
    """


@main.command()
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of face images (recursive; one sub-folder per subject gives a subject-disjoint split).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for metrics.jsonl, last.pt and best.pt; one that already holds a run needs --resume "
                   "or --overwrite.")
@click.option("--epochs", type=int, default=50, show_default=True)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--lr", type=float, default=2e-4, show_default=True, help="Adam learning rate (G and D).")
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), default="constant", show_default=True)
@click.option("--adversarial-weight", type=float, default=1e-3, show_default=True,
              help="Weight of BCE(1, D(G(lr))) in the generator loss; 0 trains on the content loss alone.")
@click.option("--warmup-epochs", type=int, default=0, show_default=True,
              help="Content-loss-only epochs before the adversarial phase.")
@click.option("--init-from", default=None, metavar="NAME|PATH",
              help="Start the generator from trained weights: a checkpoint (e.g. an MSE-only run's best.pt), a "
                   "bundled model's name or an fp32 enhance-edge ONNX file.")
@click.option("--content-loss", type=click.Choice(["mse", "l1"]), default="mse", show_default=True)
@click.option("--teacher", default=None, metavar="NAME|PATH",
              help="Distil from this trained model (a bundled name such as 'default', or an ONNX file): its "
                   "outputs are a second target beside the HR faces.")
@click.option("--distill-weight", type=float, default=1.0, show_default=True,
              help="Weight of content(G(lr), teacher(lr)) in the generator loss (with --teacher).")
@click.option("--qat", is_flag=True,
              help="Quantization-aware: simulate the int8 model's rounding while training (use with --init-from "
                   "a float run, then `export` and `quantize`); best.pt is the best simulated-int8 epoch.")
@click.option("--skip", type=click.Choice(["none", "bicubic"]), default="none", show_default=True,
              help="'bicubic' adds a fixed bicubic upsampling of the input to the generator's output.")
@click.option("--channels", type=int, default=20, show_default=True, help="Generator width.")
@click.option("--blocks", type=int, default=16, show_default=True, help="Generator residual blocks.")
@click.option("--scale", type=click.IntRange(min=2), default=2, show_default=True, help="Upscaling factor.")
@click.option("--hflip/--no-hflip", default=False, show_default=True, help="Random horizontal flips.")
@click.option("--degrade", is_flag=True,
              help="Draw each training LR through random blur, down-scaling kernel, noise and JPEG (ranges below; "
                   "defaults cover PROTOCOL.md's range) instead of the clean bicubic half.")
@click.option("--clean-share", type=float, default=None, help="With --degrade: share of clean pairs [default: 0.3].")
@click.option("--blur-sigma", default=None, metavar="LOW,HIGH", callback=lambda c, p, v: _parse_range(c, p, v, float),
              help="With --degrade: Gaussian blur sigma range, HR pixels [default: 0.3,1.5].")
@click.option("--noise-sigma", default=None, metavar="LOW,HIGH", callback=lambda c, p, v: _parse_range(c, p, v, float),
              help="With --degrade: noise sigma range, 8-bit levels [default: 0.5,6].")
@click.option("--jpeg-quality", default=None, metavar="LOW,HIGH", callback=lambda c, p, v: _parse_range(c, p, v, int),
              help="With --degrade: JPEG quality range [default: 40,95].")
@click.option("--condition", type=click.Choice(["none", "degradation"]), default="none", show_default=True,
              help="'degradation': the generator also takes the degradation level (the runtime's --strength) "
                   "and an estimator learns to read it from the image (needs --degrade).")
@click.option("--extra-data", "extra_data", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="More training images (repeatable): folders of photos, read as luma, cropped to the HR size. "
                   "Validation and test stay --data's.")
@click.option("--extra-crops", type=click.IntRange(min=0), default=1024, show_default=True,
              help="Random crops of the --extra-data images per epoch.")
@click.option("--max-images", type=click.IntRange(min=1), default=None,
              help="Use at most N images per split (quick runs).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="PyTorch intra-op threads (default: all cores).")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=500, show_default=True,
              help="Also write OUT/last.pt every K optimiser steps (0: only at epoch ends).")
@click.option("--resume", is_flag=True,
              help="Continue from OUT/last.pt (with the same options) if it exists, else start afresh.")
@click.option("--overwrite", is_flag=True,
              help="Replace the run OUT holds (its last.pt, best.pt and metrics.jsonl) with a new one.")
@reports_errors
def train(data_dir, out_dir, epochs, batch_size, lr, lr_schedule, adversarial_weight, warmup_epochs, init_from,
          content_loss, teacher, distill_weight, qat, skip, channels, blocks, scale, hflip, degrade, clean_share,
          blur_sigma, noise_sigma, jpeg_quality, condition, extra_data, extra_crops, max_images, seed, threads,
          checkpoint_every, resume, overwrite):
    """Train the generator (and discriminator) on a folder of faces.

    Defaults are the report's: 50 epochs, batch 64, Adam 2e-4 with betas (0.5, 0.9),
    G loss = MSE + 1e-3 * BCE. Each epoch appends a line to OUT/metrics.jsonl and
    writes OUT/last.pt; OUT/best.pt is the epoch with the best validation PSNR.

    \b
    A small model distilled from the bundled one, then made int8-friendly (MODEL_CARD.md, "fast"):
      enhance-edge train --data faces/ --out run/fast --channels 16 --blocks 4 --skip bicubic \\
          --adversarial-weight 0 --teacher default --lr 1e-3 --lr-schedule cosine \\
          --batch-size 32 --hflip --epochs 60
      enhance-edge train --data faces/ --out run/fast-qat --init-from run/fast/best.pt --qat \\
          --channels 16 --blocks 4 --skip bicubic --adversarial-weight 0 --teacher default \\
          --lr 1e-4 --lr-schedule cosine --batch-size 32 --hflip --epochs 10

    \b
    Several processes or machines (--batch-size stays the global batch):
      torchrun --nproc-per-node 4 --no-python enhance-edge train --data faces/ --out run/ --resume
    """
    if resume and overwrite:
        raise click.UsageError("--resume continues the run in --out and --overwrite replaces it: give one")
    _needs_train_extra("training")
    from .degradation import DegradationConfig
    from .train.config import GeneratorConfig, RunConfig, TrainConfig
    from .train.loop import train as run_training

    ranges = {"clean_share": clean_share, "blur_sigma": blur_sigma, "noise_sigma": noise_sigma,
              "jpeg_quality": jpeg_quality}
    given = {name: value for name, value in ranges.items() if value is not None}
    if given and not degrade:
        raise click.UsageError(f"--{next(iter(given)).replace('_', '-')} sets a range of --degrade: add --degrade")
    try:
        config = RunConfig(
            generator=GeneratorConfig(channels=channels, residual_blocks=blocks, skip=skip, scale=scale,
                                      condition=condition),
            train=TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, lr_schedule=lr_schedule,
                              adversarial_weight=adversarial_weight, warmup_epochs=warmup_epochs,
                              init_from=init_from, content_loss=content_loss, teacher=teacher,
                              distill_weight=distill_weight, qat=qat, hflip=hflip, max_images=max_images,
                              extra_data=tuple(str(folder) for folder in extra_data), extra_crops=extra_crops,
                              seed=seed, threads=threads, checkpoint_every=checkpoint_every),
            degradation=DegradationConfig(**given) if degrade else None)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    best = run_training(data_dir, out_dir, config, report=lambda line: click.echo(line, err=True), resume=resume,
                        overwrite=overwrite)
    if best is not None:  # None in torchrun's other processes: rank 0 alone reports
        click.echo(f"best checkpoint: {best}")


@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="ONNX file to write (only written once the parity check passes).")
@click.option("--tolerance", type=float, default=PARITY_TOLERANCE, show_default=True,
              help="Largest allowed |ONNX - PyTorch| on [0, 1] values.")
@click.option("--score-on", "score_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Face folder whose test split is scored (PROTOCOL.md; split with the "
                                 "checkpoint's own seed, at its HR size); the scores go into the model's "
                                 "metadata (key 'test'). If scoring fails, nothing is written.")
@click.option("--clean-model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="For a generator conditioned on the degradation level: an unconditioned model file beside "
                   "-o that runs instead below --clean-below (its -int8 sibling for the int8 model).")
@click.option("--clean-below", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Strength below which --clean-model runs.")
@click.option("--estimator-from", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Carry the degradation estimator of this checkpoint (a run with the same --degrade ranges) "
                   "instead of the exported run's own.")
@reports_errors
def export(checkpoint, output, tolerance, score_dir, clean_model, clean_below, estimator_from):
    """Export a training checkpoint's generator to ONNX.

    The model gets dynamic batch, height and width, is simplified with onnxsim and
    carries its scale, channels, value range, layout, config and training facts as
    metadata. onnxruntime and PyTorch are then compared on two input sizes (one odd,
    one batch of 2); a difference above --tolerance is an error and nothing is written.
    """
    _needs_train_extra("export")
    from .export.onnx_export import export_checkpoint

    if clean_model is not None and clean_model.resolve().parent != output.resolve().parent:
        raise click.BadParameter(f"{str(clean_model)!r} must sit beside the output, in {output.resolve().parent}",
                                 param_hint="--clean-model")
    target = output
    if score_dir is not None:  # exported and scored in scratch space first: a failed scoring leaves no OUTPUT
        import tempfile

        scratch = click.get_current_context().with_resource(tempfile.TemporaryDirectory(prefix="enhance-edge-"))
        target = Path(scratch) / output.name
        if clean_model is not None:  # scored as it will run: with its clean model beside it
            import shutil

            shutil.copy2(clean_model, Path(scratch) / clean_model.name)
    results = export_checkpoint(checkpoint, target, tolerance,
                                None if clean_model is None else target.parent / clean_model.name, clean_below,
                                estimator_from)
    for result in results:
        click.echo(f"parity {'x'.join(map(str, result['shape']))}: max |onnx - torch| = {result['max_abs_diff']:.2e}")
    if score_dir is not None:
        from .export.onnx_export import record_test_scores

        scores = record_test_scores(target, score_dir, output)
        click.echo(f"test split ({scores['images']} images): model {scores['model']['psnr']:.2f} dB, "
                   f"lanczos {scores['lanczos']['psnr']:.2f} dB, bicubic {scores['bicubic']['psnr']:.2f} dB")
    click.echo(f"wrote {output} ({output.stat().st_size / 1024:.0f} KiB)")


class _Quantity(click.ParamType):
    """A count with an optional K, M or G suffix ("800M", "1.5G"); memory sizes may add "B" or "iB"."""

    def __init__(self, name: str, multiplier: int):
        self.name, self.multiplier = name, multiplier

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().removesuffix("B").removesuffix("I")
        power = "KMG".find(text[-1:]) + 1 if text[-1:] in ("K", "M", "G") else 0
        try:
            number = float(text[:-1] if power else text) * self.multiplier**power
        except ValueError:
            self.fail(f"expected a number with an optional K, M or G suffix, got {value!r}", param, ctx)
        if not 1 <= number < 2**63:
            self.fail(f"must be at least 1, got {value!r}", param, ctx)
        return int(number)


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
        click.echo(f"progress: {self.files_done}/{self.files} files, {fraction:.0%}, {_duration(elapsed)} elapsed"
                   f"{left}", err=True)


def _upscale_on_cluster(inputs: list[Path], output: Path | None, cluster: str, options: dict,
                        fail_on_skip: bool) -> None:
    """`upscale --cluster`: the same lines as without it, Ray's progress, a done/total line every few seconds."""
    from .batch import printable
    from .cluster import Status, upscale_on_cluster

    start = time.monotonic()
    counts = dict.fromkeys(Status, 0)
    last_progress = start

    def report(item, finished: int, total: int) -> None:
        nonlocal last_progress
        counts[item.status] += 1
        for warning in item.warnings:
            click.echo(f"warning: {printable(warning)}", err=True)
        if item.status is Status.DONE:
            click.echo(printable(f"{item.source} -> {item.target}"))
        elif item.status is Status.FAILED:
            click.echo(f"error: {printable(item.reason)}", err=True)
        else:
            click.echo(f"{'error' if fail_on_skip else 'skipped'}: {printable(str(item.target))} exists "
                       f"(--overwrite replaces it)", err=True)
        if finished == total or time.monotonic() - last_progress > 5:
            last_progress = time.monotonic()
            click.echo(f"{finished}/{total} files", err=True)

    try:
        run = upscale_on_cluster(inputs, output, cluster=cluster, report=report, **options)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: done {counts[Status.DONE]}, failed {counts[Status.FAILED]}, skipped "
                   f"{counts[Status.SKIPPED]}; no partial file was left, the summary lists the rest as not run",
                   err=True)
        sys.exit(130)
    if run.removed_parts:
        click.echo(f"removed {len(run.removed_parts)} partial file(s) that a killed earlier run left beside its "
                   f"outputs", err=True)
    click.echo(f"done {counts[Status.DONE]}, failed {counts[Status.FAILED]}, skipped {counts[Status.SKIPPED]} in "
               f"{time.monotonic() - start:.1f} s ({run.actors.count} actors, Ray start-up {run.startup_s:.1f} s); "
               f"summary: {run.summary}", err=True)
    if counts[Status.FAILED] or (fail_on_skip and counts[Status.SKIPPED]):
        sys.exit(1)


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
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
@click.option("--max-memory", type=_Quantity("size", 1024), default=DEFAULT_MAX_MEMORY,
              show_default=f"{DEFAULT_MAX_MEMORY >> 30}G",
              help="Memory budget for one image, e.g. 800M or 2G; images that would exceed it are tiled. "
                   "Tiles bound only the model run: about 128M plus 64 bytes per input pixel (96 with "
                   "alpha) are needed whatever the budget, and an image that needs more gets a warning.")
@click.option("--max-pixels", type=_Quantity("count", 1000), default=DEFAULT_MAX_PIXELS,
              show_default=f"{DEFAULT_MAX_PIXELS // 10**6}M",
              help="Refuse inputs with more pixels than this, e.g. 100M (guards against decompression bombs).")
@click.option("--model", default="default", show_default=True, metavar="NAME|PATH",
              help="A bundled model (see `enhance-edge models`: default, fast) or an enhance-edge ONNX file.")
@click.option("--provider", default="cpu", show_default=True,
              help="onnxruntime execution provider: cpu, cuda, ... or a full name like CPUExecutionProvider.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="onnxruntime intra-op threads.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help=PRECISION_HELP)
@click.option("--strength", default="auto", show_default=True, callback=_parse_strength, metavar="auto|0..1",
              help=STRENGTH_HELP)
@click.option("--cluster", default=None, metavar="local|auto|ADDRESS",
              help="Run on Ray Data (pip install \"enhance-edge[cluster]\"): local starts Ray on this machine, auto "
                   "or an address joins a running cluster. Same outputs; a rerun skips finished files; a summary "
                   f"CSV ({CLUSTER_SUMMARY_NAME}) beside the outputs lists every input's status.")
@click.option("--json", "as_json", is_flag=True,
              help="For scripts: one JSON object per file on stdout (input, output, status, error, seconds, model, "
                   "precision, strength, sizes), then a summary object; messages stay on stderr.")
@click.option("--fail-on-skip", is_flag=True,
              help="Exit with status 1 when an output was skipped because it exists (as when a file fails).")
@reports_errors
def upscale(inputs, output, recursive, suffix, output_format, quality, overwrite, tile, max_memory, max_pixels,
            model, provider, threads, precision, strength, cluster, as_json, fail_on_skip):
    """Upscale images x2 (the model's own scale) with onnxruntime.

    \b
    Examples:
      enhance-edge upscale face.png                    # writes face_x2.png
      enhance-edge upscale face.png -o big.png
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
    from .batch import (Outcome, failed_result, model_precision, plan_jobs, printable, strength_setting,
                        unsearched_folders, upscale_file)

    if not recursive:
        for folder, count in unsearched_folders(list(inputs)).items():
            click.echo(f"note: {printable(str(folder))}: {count} sub-folder{'s' if count > 1 else ''} not searched "
                       f"(-r includes them)", err=True)
    if cluster is not None:
        if as_json:
            raise click.UsageError("--json does not apply to --cluster yet: its summary CSV lists every input")
        _upscale_on_cluster(list(inputs), output, cluster, dict(
            recursive=recursive, suffix=suffix, output_format=output_format, quality=quality, overwrite=overwrite,
            tile=tile, max_memory=max_memory, max_pixels=max_pixels, model=model, provider=provider,
            threads=threads, precision=precision, strength=strength), fail_on_skip)
        return
    from .fileio import remove_stale_parts, terminate_as_interrupt
    from .imageio import probe_pixels
    from .upscaler import Upscaler

    start = time.monotonic()
    upscaler = Upscaler(model, precision=precision, strength=strength, provider=provider, threads=threads, tile=tile,
                        max_memory=max_memory)
    jobs = plan_jobs(list(inputs), output, scale=upscaler.scale, recursive=recursive, suffix=suffix,
                     output_format=output_format)
    if not jobs:
        raise EnhanceEdgeError(f"no images found in {printable(', '.join(map(str, inputs)))}"
                               f"{'' if recursive else ' (-r searches sub-folders)'}")
    # What every file runs with, said once (a bundled name's precision "auto" is chosen per machine).
    run = {"model": upscaler.model_name, "precision": model_precision(upscaler),
           "strength": strength_setting(upscaler, None)}
    strength_note = "" if run["strength"] is None else f", strength {run['strength']}"
    click.echo(f"model {printable(run['model'])}, {run['precision']}{strength_note}", err=True)
    removed = remove_stale_parts(job.target for job in jobs)
    if removed:
        click.echo(f"removed {len(removed)} partial file(s) that a killed earlier run left beside its outputs",
                   err=True)
    sizes = [probe_pixels(job.source) for job in jobs]
    counts = {outcome.value: 0 for outcome in Outcome}
    show_bar = (len(jobs) > 1 or sum(sizes) > _LARGE_IMAGE_PIXELS) and _stderr_is_terminal()
    lines = None if _stderr_is_terminal() else _ProgressLines(len(jobs), sum(sizes))
    try:
        # SIGTERM stops the batch as Ctrl-C does: the file being written is removed, not left half-done.
        with terminate_as_interrupt(), click.progressbar(length=max(sum(sizes), 1), label="upscaling", file=sys.stderr,
                                                         hidden=not show_bar, show_percent=True) as bar:
            def warn(message: str) -> None:
                _clear_bar_line(bar)
                click.echo(f"warning: {printable(message)}", err=True)

            def advance(pixels: int) -> None:
                bar.update(pixels)
                if lines is not None:
                    lines.advance(pixels)

            for job, size in zip(jobs, sizes):
                before, file_start = bar.pos, time.perf_counter()
                try:
                    result = upscale_file(upscaler, job, overwrite=overwrite, quality=quality,
                                          max_pixels=max_pixels, progress=advance, warn=warn)
                except EnhanceEdgeError as exc:
                    result = failed_result(upscaler, job, str(exc), time.perf_counter() - file_start)
                counts[result.status.value] += 1
                _clear_bar_line(bar)
                if result.status is Outcome.FAILED:
                    click.echo(f"error: {printable(result.error)}", err=True)
                elif result.status is Outcome.SKIPPED:
                    click.echo(f"{'error' if fail_on_skip else 'skipped'}: {printable(str(job.target))} exists "
                               f"(--overwrite replaces it)", err=True)
                if as_json:
                    click.echo(json.dumps({"type": "file", **result.to_dict()}))
                elif result.status is Outcome.DONE:
                    click.echo(printable(f"{job.source} -> {job.target}"))
                advance(max(0, before + size - bar.pos))  # the file's whole share, even when it failed early
                if lines is not None:
                    lines.advance(files=1)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: done {counts['done']}, failed {counts['failed']}, skipped {counts['skipped']}; "
                   f"no partial file was left", err=True)
        sys.exit(130)
    except BrokenPipeError:  # e.g. `| head -1`: the reader is gone, so stop as a pipe's writer does
        click.echo(f"stopped: standard output was closed; done {counts['done']}, failed {counts['failed']}, "
                   f"skipped {counts['skipped']}; no partial file was left", err=True)
        raise  # click silences the closed stream and exits 1
    seconds = time.monotonic() - start
    if as_json:
        click.echo(json.dumps({"type": "summary", **counts, "seconds": round(seconds, 3), **run}))
    click.echo(f"done {counts['done']}, failed {counts['failed']}, skipped {counts['skipped']} in {seconds:.1f} s"
               f"{'; skipped outputs fail the run (--fail-on-skip)' if fail_on_skip and counts['skipped'] else ''}",
               err=True)
    if counts["failed"] or (fail_on_skip and counts["skipped"]):
        sys.exit(1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. 0.0.0.0 lets other machines use it (there is no login).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0 picks a free port.")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
@click.option("--max-upload", type=_Quantity("size", 1024), default=WebLimits.max_upload_bytes,
              show_default=f"{WebLimits.max_upload_bytes >> 20}M",
              help="Largest image file accepted, e.g. 50M (HTTP 413 above).")
@click.option("--max-pixels", type=_Quantity("count", 1000), default=WebLimits.max_pixels,
              show_default=f"{WebLimits.max_pixels // 10**6}M",
              help="Largest image accepted, in input pixels: the decompression-bomb guard (HTTP 422 above).")
@click.option("--max-queue", type=click.IntRange(min=0), default=WebLimits.max_waiting, show_default=True,
              help="Requests that may wait while one is upscaled; more are answered 503.")
@click.option("--max-memory", type=_Quantity("size", 1024), default=DEFAULT_MAX_MEMORY,
              show_default=f"{DEFAULT_MAX_MEMORY >> 30}G",
              help="Memory budget for the image being upscaled; larger ones are tiled (only the model run is: "
                   "see `upscale --help`).")
@click.option("--provider", default="cpu", show_default=True, help="onnxruntime execution provider.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="onnxruntime intra-op threads.")
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
    service = UpscaleService(WebLimits(max_upload, max_pixels, max_queue),
                             ModelCatalog(provider, threads, max_memory))
    run_server(service, host, port, open_browser, echo=click.echo)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per model file) instead of a table.")
@reports_errors
def models(as_json):
    """List the bundled models: name, precision, scale, cost, file size, test PSNR and path.

    \b
    Use one by name:  enhance-edge upscale face.png --model fast --precision int8
    Each file is a plain ONNX model usable from any onnxruntime binding, without
    enhance-edge: see README.md, "The ONNX contract".
    """
    from .model import bundled_models

    found = bundled_models()
    if as_json:
        click.echo(json.dumps([m.to_dict() for m in found], indent=2))
        return
    click.echo(f"{'name':<9}{'precision':<11}{'scale':>5}{'MACs/pixel':>12}{'size KiB':>10}{'test PSNR':>11}  path")
    for m in found:
        macs = f"{m.macs_per_input_pixel:,}" if m.macs_per_input_pixel else "-"
        psnr = f"{m.test_psnr:.2f} dB" if m.test_psnr is not None else "-"
        click.echo(f"{m.name:<9}{m.precision:<11}{'x' + str(m.scale):>5}{macs:>12}{m.file_bytes / 1024:>10.0f}"
                   f"{psnr:>11}  {m.path}")


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
    Free for research use; publications must cite the two papers named in README.md ("Data").
    """
    from .yale import fetch_yale

    done = fetch_yale(folder, archive, sha256, report=lambda line: click.echo(line, err=True))
    click.echo(f"wrote {done.faces} faces of {done.subjects} subjects to {done.folder} (PNG, converted losslessly "
               f"from PGM); left out {done.left_out} other archive files (Ambient images, those marked .bad)")


def _parse_range(ctx, param, value, kind):
    """"LOW,HIGH" -> (low, high) of ``kind``; None stays None (the config's default)."""
    if value is None:
        return None
    try:
        low, high = (kind(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected LOW,HIGH (two {kind.__name__} numbers), got {value!r}") from None
    return low, high


def _parse_hr_size(ctx, param, value):
    if value == "native":
        return None
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT or 'native', got {value!r}") from None
    from .protocol import MIN_HR_SIDE, SSIM_WINDOW

    if width % 2 or height % 2 or min(width, height) < MIN_HR_SIDE:
        raise click.BadParameter(f"width and height must be even (the LR is half) and at least {MIN_HR_SIDE} "
                                 f"(SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} window), got {value!r}")
    return width, height


@main.command()
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of face images; one sub-folder per subject gives per-split scores.")
@click.option("--model", default="default", show_default=True, metavar="NAME|PATH",
              help="A bundled model (see `enhance-edge models`: default, fast) or an enhance-edge ONNX file.")
@click.option("--split", "splits", multiple=True, type=click.Choice(["train", "validation", "test", "all"]),
              help="Only these splits (repeatable). Default: every split the folder has.")
@click.option("--hr-size", default="92x112", show_default=True, callback=_parse_hr_size,
              help="HR size WIDTHxHEIGHT every face is resized to (the report's setting), "
                   "or 'native' to keep each image, cropped to even size.")
@click.option("--seed", type=int, default=None,
              help="Seed of the subject split of a folder other than the Yale faces (whose split is fixed): "
                   "the training run's --seed. Default: the seed the model records it was trained with, else 0.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="onnxruntime intra-op threads.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help=PRECISION_HELP)
@click.option("--condition", "conditions", multiple=True, type=click.Choice([*CONDITION_NAMES, "all"]),
              default=("clean",), show_default=True,
              help="How the LR is made (PROTOCOL.md, 'Degraded inputs'); repeatable; 'all' scores every one.")
@click.option("--strength", default="auto", show_default=True, callback=_parse_strength, metavar="auto|0..1",
              help=STRENGTH_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table (an infinite PSNR is null).")
@reports_errors
def evaluate(data_dir, model, splits, hr_size, seed, threads, precision, conditions, strength, as_json):
    """Score the model against interpolation on a folder of faces (PROTOCOL.md).

    HR is each face resized with Lanczos (or cropped to even size), LR its bicubic half, or
    with --condition a degraded one (JPEG, noise, blur, camera) that every method upscales
    alike; all are scored against the clean HR. PSNR and SSIM are scikit-image's on the 8-bit
    outputs, averaged over images. Colour faces are upscaled in colour and scored on their
    luma (Y of YCbCr), with RGB PSNR beside.

    \b
    Every condition in one table (README's and MODEL_CARD.md's results):
      enhance-edge evaluate --data yale_b_cropped --split test --condition all
    """
    import json

    from .dataset import trained_seed
    from .evaluate import BASELINES, evaluate_folder, finite_or_none
    from .upscaler import Upscaler

    upscaler = Upscaler(model, precision=precision, threads=threads, strength=strength)
    seed = trained_seed(upscaler.info) if seed is None else seed
    names = CONDITION_NAMES if "all" in conditions else tuple(dict.fromkeys(conditions))
    results = {name: evaluate_folder(data_dir, upscaler, hr_size, tuple(splits) or None, seed=seed, condition=name)
               for name in names}
    if as_json:
        click.echo(json.dumps(finite_or_none(results if len(names) > 1 else results[names[0]]), indent=2))
        return
    for split in results[names[0]]:
        colour = "rgb_psnr" in results[names[0]][split]["model"]
        click.echo(f"{split} ({results[names[0]][split]['images']} images)")
        click.echo(f"  {'condition':<11}{'method':<16}{'PSNR (dB)':>10}{'SSIM':>8}{'vs Lanczos':>12}"
                   + (f"{'RGB PSNR':>10}" if colour else ""))
        for name in names:
            scores = results[name][split]
            for method in ("model", *BASELINES):
                rgb = f"{scores[method]['rgb_psnr']:>10.2f}" if colour else ""
                gain = scores[method]["psnr"] - scores["lanczos"]["psnr"]
                click.echo(f"  {name:<11}{method:<16}{scores[method]['psnr']:>10.2f}{scores[method]['ssim']:>8.4f}"
                           f"{gain:>+12.2f}{rgb}")


@main.command()
@click.option("--metrics", "runs", multiple=True, required=True, metavar="LABEL=PATH",
              help="A run's metrics.jsonl with its legend label (repeatable), e.g. report=runs/report/metrics.jsonl.")
@click.option("--out", "out_dir", default="docs", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", default="default", show_default=True, metavar="NAME|PATH",
              help="Model for the LR | generated | Lanczos | HR grid: a bundled name or an ONNX file.")
@click.option("--face", "faces", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A face for the grid (repeatable); skimage's astronaut is added as a face unlike Yale.")
@click.option("--before", default=None, metavar="NAME|PATH",
              help="Also draw real-photos.png: real JPEGs upscaled by Lanczos, this (older) model and --model.")
@reports_errors
def plots(runs, out_dir, model, faces, before):
    """Draw the report's figures: losses, validation PSNR, discriminator scores, the face grid and,
    with --before, the real-photo comparison."""
    _needs_train_extra("plotting")
    from .model import BUNDLED_MODELS, resolve_model
    from .train.plots import draw_all, plot_real_photos
    from .upscaler import Upscaler

    metrics = {}
    for run in runs:
        label, sep, path = run.partition("=")
        if not sep or not Path(path).is_file():
            raise click.BadParameter(f"expected LABEL=PATH to a metrics.jsonl, got {run!r}", param_hint="--metrics")
        metrics[label] = Path(path)
    for path in draw_all(metrics, out_dir, Upscaler(resolve_model(model)) if faces else None, list(faces)):
        click.echo(f"wrote {path}")
    if before is not None:
        # fp32 for bundled names: the figure shows the models, not one CPU's int8 choice.
        before_model, after_model = (Upscaler(name, precision="fp32" if name in BUNDLED_MODELS else "auto")
                                     for name in (before, model))
        click.echo(f"wrote {plot_real_photos(before_model, after_model, Path(out_dir))}")


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", "output_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="int8 model to write (default: MODEL-int8.onnx beside MODEL, where `upscale --precision` "
                   "looks for it). Only written once it passes the PSNR check.")
@click.option("--calibration", "data_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Face folder; its validation split (PROTOCOL.md: yaleB29..33 for the Yale faces) "
                   "calibrates the model and checks its PSNR.")
@click.option("--method", "methods", multiple=True, type=click.Choice(["minmax", "entropy", "percentile"]),
              help="Calibration methods to try (repeatable; default: all).")
@click.option("--activations", multiple=True, type=click.Choice(["uint8", "int8", "uint16"]),
              help="Activation types to try (repeatable; default: all). uint16 is measured for reference only "
                   "(no 16-bit kernels: it runs in float) and never kept, so give uint8 or int8 too.")
@click.option("--weights", multiple=True, type=click.Choice(["int8", "uint8"]),
              help="Weight types to try (repeatable; default: all). Weights are always per channel.")
@click.option("--silu", multiple=True, type=click.Choice(["int8", "float"]),
              help="Quantize SiLU's Sigmoid and Mul (int8) or leave them in float (repeatable).")
@click.option("--output-layers", "output", multiple=True, type=click.Choice(["float", "int8"]),
              help="Keep the image-space output layers (<= scale^2 channels: last conv, bicubic skip, "
                   "pixel shuffle) in float, or quantize them too (repeatable).")
@click.option("--calibration-set", "calibration_sets", multiple=True, type=click.Choice(["faces", "mix"]),
              help="Calibrate on the validation faces alone, or on them plus natural images, gradients, high-key, "
                   "low-key and text (mix) (repeatable).")
@click.option("--residual", multiple=True, type=click.Choice(["int8", "float"]),
              help="Quantize the residual blocks' adds (int8) or keep them in float (repeatable).")
@click.option("--max-loss-db", type=click.FloatRange(min=0), default=MAX_PSNR_LOSS_DB, show_default=True,
              help="Largest PSNR loss of int8 against fp32 on the validation faces and, on average, on every "
                   "gate set; above it nothing is written.")
@click.option("--max-image-loss-db", type=click.FloatRange(min=0), default=None,
              help="Largest PSNR loss on any one gate image (validation faces, scikit-image's astronaut and LFW "
                   "faces, synthetic gradients, high-key and low-key images; none used to calibrate). "
                   "[default: 0.3]")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="onnxruntime threads for timing recipes.")
@reports_errors
def quantize(model, output_path, data_dir, methods, activations, weights, silu, output, calibration_sets, residual,
             max_loss_db, max_image_loss_db, threads):
    """Quantize an fp32 model to int8 (onnxruntime static quantization, QDQ, per-channel weights).

    With no recipe option, every calibration method and activation/weight type is tried
    (SiLU int8, output layers float), plus SiLU in float and output layers in int8; with
    some, every combination of them (unset ones: all types and methods, SiLU int8, output
    layers float). Each recipe is scored on validation PSNR and latency (256x256), and the
    graph onnxruntime runs is checked for ops left in float. Kept: among recipes within
    --max-loss-db of fp32, those within 10% of the fastest, then the best PSNR. The
    comparison is stored in the int8 model's metadata (`enhance-edge bench` prints it).
    Every recipe also passes a gate image by image (--max-image-loss-db) and set by set
    (--max-loss-db), printed as a table; where this CPU's int8 kernels can saturate (x86
    without VNNI/AMX) quality is computed as exact int8 arithmetic would compute it.
    """
    _needs_train_extra("quantization")
    from .export.quantize import (MAX_IMAGE_LOSS_DB, default_search, describe_gate, quantize_model, require_keepable,
                                  search_space)
    from .model import int8_model_path

    chosen = {"calibrations": methods, "activations": activations, "weights": weights, "silu": silu, "output": output,
              "calibration_sets": calibration_sets, "residual": residual}
    recipes = (search_space(**{key: values for key, values in chosen.items() if values})
               if any(chosen.values()) else default_search())
    try:
        require_keepable(recipes)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--activations") from None
    output_path = output_path or int8_model_path(model)
    summary = quantize_model(model, output_path, data_dir, recipes, max_loss_db=max_loss_db,
                             max_image_loss_db=MAX_IMAGE_LOSS_DB if max_image_loss_db is None else max_image_loss_db,
                             threads=threads, report=click.echo)
    validation, test = summary["validation"], summary["test"]
    click.echo(f"kept {' '.join(f'{k}={v}' for k, v in summary['recipe'].items())}: validation PSNR "
               f"{validation['int8']['psnr']:.3f} dB (fp32 {validation['fp32']['psnr']:.3f}), "
               f"{summary['speedup_at_256']:.2f}x fp32's speed at 256x256")
    if test["int8"]:
        click.echo(f"test split (reported, not used to choose): int8 {test['int8']['psnr']:.3f} dB, "
                   f"fp32 {test['fp32']['psnr']:.3f} dB")
    click.echo(f"gate of the kept recipe ({summary['scored_as']}):")
    for line in describe_gate(summary["gate"]):
        click.echo(line)
    click.echo(f"wrote {output_path} ({output_path.stat().st_size / 1024:.0f} KiB)")


def _parse_sizes(ctx, param, value):
    try:
        sizes = tuple(tuple(int(v) for v in item.lower().split("x")) for item in value.split(","))
    except ValueError:
        sizes = ()
    if not sizes or any(len(s) != 2 or min(s) < 1 for s in sizes):
        raise click.BadParameter(f"expected HEIGHTxWIDTH[,HEIGHTxWIDTH...], got {value!r}")
    return sizes


def _parse_threads(ctx, param, value):
    try:
        counts = tuple(int(v) for v in value.split(","))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise click.BadParameter(f"expected thread counts like 1,2, got {value!r}")
    return counts


@main.command()
@click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="fp32 enhance-edge model (default: the bundled one).")
@click.option("--int8", "int8_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Its int8 model (default: MODEL-int8.onnx beside it).")
@click.option("--calibration", "calibration_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="First (re)make the int8 model with `quantize`'s full recipe search on this "
                                 "face folder, then benchmark it (name it with --int8 when the model is a "
                                 "bundled one: the bundled int8 file is not overwritten).")
@click.option("--max-loss-db", type=click.FloatRange(min=0), default=MAX_PSNR_LOSS_DB, show_default=True,
              help="With --calibration: the quantization's largest validation PSNR loss (see `quantize`).")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help="Face folder whose Yale test subjects (yaleB34..39) give quality and inputs "
                   "(default: ../shared/data/yale_b_cropped beside the repository).")
@click.option("--peers", "peers_dir", type=click.Path(path_type=Path), default=None,
              help="Folder of OpenCV's FSRCNN/ESPCN x2 weights (default: ../shared/peers beside the repository); "
                   "peers that are not there are skipped and listed.")
@click.option("--sizes", default="56x46,256x256,512x512,1024x1024", show_default=True, callback=_parse_sizes,
              help="Input sizes, HEIGHTxWIDTH, comma-separated (56x46: the report's faces; 512x512 at 2 threads: "
                   "where other models' latency is checked against FSRCNN x2).")
@click.option("--threads", "thread_counts", default="1,2", show_default=True, callback=_parse_threads,
              help="Thread counts, comma-separated.")
@click.option("--batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Faces per batch for the throughput measurement.")
@click.option("--min-time", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Seconds of repetitions per measurement, at least.")
@click.option("--min-reps", type=click.IntRange(min=1), default=10, show_default=True,
              help="Repetitions per measurement, at least (after 2 warm-up runs).")
@click.option("--peak-size", type=click.IntRange(min=16), default=2048, show_default=True,
              help="Side of the square matrix products that measure this machine's fp32 and int8 peaks.")
@click.option("--section", "sections", multiple=True,
              type=click.Choice(["latency", "throughput", "quality", "memory", "end_to_end", "kernels"]),
              help="Only these sections (repeatable; default: all).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where results.json, RESULTS.md and latency.png go (default: the repository's benchmarks/).")
@click.option("--compare", multiple=True, metavar="NAME|PATH",
              help="Also time and score this model with onnxruntime, as ort-LABEL (repeatable): a bundled name "
                   "gives each precision installed (LABEL NAME-fp32, NAME-int8), a file its stem. Default: the "
                   "bundled 'fast' model's installed files, if any.")
@reports_errors
def bench(model_path, int8_path, calibration_dir, max_loss_db, data_dir, peers_dir, sizes, thread_counts, batch,
          min_time, min_reps, peak_size, sections, out_dir, compare):
    """Benchmark PyTorch eager, ORT fp32/int8, OpenCV DNN, OpenCV's FSRCNN/ESPCN and Pillow side by side.

    \b
    The run the project publishes (bundled models, ~10 min on 2 idle cores):
      enhance-edge bench --min-reps 5 --min-time 1
    A fresh quantization of the bundled model, benchmarked:
      enhance-edge bench --calibration ../shared/data/yale_b_cropped --int8 new-int8.onnx
    Prints a table and writes results.json, RESULTS.md and latency.png. Figures vary
    between runs and machines: compare ratios. Needs:  pip install "enhance-edge[bench]"
    """
    for module in ("onnx", "skimage"):
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtraError("benchmarking", "bench", module) from None
    from .benchmarks.report import screen_table, write_all
    from .benchmarks.run import (DEFAULT_DATA_DIR, DEFAULT_PEERS_DIR, REPO, SECTIONS, BenchConfig, compare_models,
                                 run_benchmark)
    from .model import bundled_model_path, int8_model_path

    model_path = model_path or bundled_model_path(precision="fp32")
    if int8_path is None:
        int8_path = int8_model_path(model_path)
        if calibration_dir is not None and int8_path.parent.resolve() == bundled_model_path().parent.resolve():
            raise click.UsageError(f"--calibration would overwrite the bundled {str(int8_path)!r}; "
                                   "name the new int8 model with --int8 FILE")
    if calibration_dir is not None:
        ctx = click.get_current_context()
        ctx.invoke(quantize, model=model_path, output_path=int8_path, data_dir=calibration_dir, max_loss_db=max_loss_db)
    config = BenchConfig(model_path, int8_path, data_dir=data_dir or DEFAULT_DATA_DIR,
                         peers_dir=peers_dir or DEFAULT_PEERS_DIR, sizes=sizes, threads=thread_counts,
                         batch=batch, min_time_s=min_time, min_reps=min_reps, peak_n=peak_size,
                         sections=sections or SECTIONS, extra_models=compare_models(compare))
    results = run_benchmark(config, report=lambda line: click.echo(line, err=True))
    click.echo(screen_table(results))
    for path in write_all(results, out_dir or REPO / "benchmarks"):
        click.echo(f"wrote {path}")
