"""Files in, files out: which output each input gets, and upscaling one file safely.

A batch never overwrites an input, does not replace existing outputs unless asked, and
writes each output atomically, so an interrupted run leaves only whole images behind and
can simply be run again.
"""

from __future__ import annotations

import contextlib
import enum
import glob
import math
import os
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from PIL import Image

from ..io import imageio
from ..errors import EnhanceEdgeError, ImageError, ModelError
from ..io.fileio import atomic_output, os_reason
from ..io.imageio import (DEFAULT_MAX_PIXELS, DEFAULT_QUALITY, OUTPUT_FORMATS, SourceInfo, check_output_pixels,
                          check_size, format_for, output_format_for, provenance, write_image)
from .output_size import OutputSize
from .tiling import tile_count

if TYPE_CHECKING:  # the upscaler's upscale_file runs this module's single-file path
    from .upscale_settings import UpscaleSettings
    from .upscaler import Upscaler

_GLOB_CHARACTERS = frozenset("*?[")
# What -o may end in when it names the output file (format_for accepts any extension Pillow writes).
_IMAGE_EXTENSIONS = ", ".join(extension for _, extension in OUTPUT_FORMATS.values())
# Bytes per pixel of a result resized to --outscale or --width/--height, on top of the upscale's own:
# Lanczos's output, then numpy's copy, the filtered rows and the deflated data as the PNG is encoded
# (measured on noise, which deflates least: 5.3, 17 and 22 for L, RGB and RGBA; Pillow holds RGB in 4).
_RESIZED_BYTES_PER_PIXEL = {"L": 6, "I;16": 12, "LA": 16, "RGB": 18, "RGBA": 24}


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path
    problem: str | None = None  # why this job must not run; reported as its failure


class Outcome(enum.Enum):
    DONE = "done"
    SKIPPED = "skipped"  # the output exists and overwriting was not asked for
    FAILED = "failed"  # never returned by upscale_file, which raises; for reports of a batch


@dataclass(frozen=True)
class FileResult:
    """What became of one input: what upscale_file returns, and what `upscale --json` prints."""

    input: Path
    output: Path
    status: Outcome
    model: str  # the model file and its content hash, as the output's provenance tag names it
    # What ran: "fp32" or "int8", what "auto" chose on this CPU (Upscaler.last_precision)
    precision: str
    # The degradation level the model ran at (Upscaler.last_strength): the number asked for, or what
    # "auto" estimated from the image; None for a model without the strength input, or a file not upscaled.
    strength: float | None
    input_size: tuple[int, int] | None = None  # width, height; None when the input was not read
    output_size: tuple[int, int] | None = None
    seconds: float = 0.0
    error: str | None = None  # why it failed (status FAILED)

    def to_dict(self) -> dict:
        """JSON-ready: paths as strings, sizes as [width, height]."""
        return {"input": str(self.input), "output": str(self.output), "status": self.status.value,
                "error": self.error, "seconds": round(self.seconds, 3), "model": self.model,
                "precision": self.precision,
                "strength": None if self.strength is None else round(self.strength, 3),
                "input_size": list(self.input_size) if self.input_size else None,
                "output_size": list(self.output_size) if self.output_size else None}


def model_precision(upscaler: Upscaler) -> str:
    """The precision an upscaler runs, as its reports name it: "fp32" or "int8" (the file it opened)."""
    return upscaler.precision


def failed_result(upscaler: Upscaler, job: Job, error: str, seconds: float) -> FileResult:
    """The record of a job that raised ``error``, for a batch's report."""
    return FileResult(job.source, job.target, Outcome.FAILED, upscaler.model_name, model_precision(upscaler), None,
                      seconds=seconds, error=error)


@dataclass(frozen=True)
class InputFile:
    path: Path
    relative: Path  # where its output goes under an output folder
    from_folder: bool  # found by listing a folder, rather than named


def printable(text: str) -> str:
    """``text`` with control characters escaped (a newline as \\n, ESC as \\x1b), so that a file
    name cannot break a report into lines or send commands to the terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _real_path(path: Path) -> Path:
    """``path`` with its links resolved as far as they go. Path.resolve() raises on a link loop
    (Python 3.11), and one looping input must not stop the batch: it is reported when read."""
    return Path(os.path.realpath(path))


def _is_image_file(path: Path, root: Path) -> bool:
    """An image file by its extension, found below ``root``; hidden files (and our .part temporaries) never."""
    hidden = any(part.startswith(".") for part in path.relative_to(root).parts)
    return (not hidden and imageio.pillow_format(path.suffix.lower()) is not None
            and (path.is_file() or path.is_symlink()))  # a broken link is reported, not hidden


def _is_listed_image(path: Path, root: Path) -> bool:
    """Folder listings take image files, but not the tagged outputs of earlier runs (in an output
    folder this run does not exclude)."""
    return _is_image_file(path, root) and not imageio.made_by_enhance_edge(path)


def tagged_outputs(inputs: list[Path], recursive: bool = False) -> list[Path]:
    """The image files in the folders among ``inputs`` that their listing leaves out as the tagged
    outputs of an earlier run: why a folder of such files has no images to upscale."""
    return [path for folder in inputs if folder.is_dir()
            for path in sorted(folder.rglob("*") if recursive else folder.iterdir())
            if _is_image_file(path, folder) and imageio.made_by_enhance_edge(path)]


def _is_pattern(path: Path) -> bool:
    """A quoted glob. Only a path that does not exist is one: a file may be named face[1].png."""
    return not path.exists() and bool(_GLOB_CHARACTERS & set(str(path)))


def expand_inputs(inputs: list[Path], recursive: bool = False, exclude: Path | None = None) -> list[InputFile]:
    """Files as given; folders contribute their image files (all levels with ``recursive``);
    patterns (quoted globs, ** included) their matches. A folder's listing skips ``exclude``
    when it lies inside (the output folder, whose images a rerun must not take as inputs)."""
    found: list[InputFile] = []
    for path in inputs:
        if path.is_dir():
            skipped = _real_path(exclude) if exclude is not None else None
            if skipped is not None and not (skipped != _real_path(path) and skipped.is_relative_to(_real_path(path))):
                skipped = None
            listing = path.rglob("*") if recursive else path.iterdir()
            found += [InputFile(f, f.relative_to(path), True) for f in sorted(listing)
                      if not (skipped is not None and _real_path(f).is_relative_to(skipped))
                      and _is_listed_image(f, path)]
        elif _is_pattern(path):
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True) if Path(m).is_file())
            found += [InputFile(m, Path(m.name), False) for m in matches] or [InputFile(path, Path(path.name), False)]
        else:
            found.append(InputFile(path, Path(path.name), False))
    return found


def output_extension(source: Path, output_format: str | None) -> str:
    """The output's extension: --format's, else the input's when Pillow can write it, else .png."""
    if output_format is not None:
        return OUTPUT_FORMATS[output_format][1]
    return source.suffix if format_for(source) else ".png"


def plan_jobs(inputs: list[Path], output: Path | None, *, scale: int, recursive: bool = False,
              suffix: str | None = None, output_format: str | None = None,
              output_size: OutputSize = OutputSize()) -> list[Job]:
    """Which output each input gets. One input file and an -o with an extension (or an existing
    file): -o is the output file, and must be an image file name. Otherwise -o is a folder,
    created when missing, and each output keeps its input's name (and sub-folder, with
    ``recursive``). No -o: NAME_x{scale}.EXT beside each input (the factor or the target of an
    ``output_size``: NAME_x3.5.EXT, NAME_w800.EXT). ``suffix`` replaces that default (none in -o);
    ``output_format`` (a key of OUTPUT_FORMATS) replaces the input's format."""
    if output_format is not None and output_format not in OUTPUT_FORMATS:
        raise EnhanceEdgeError(f"unknown output format {output_format!r}; known: {', '.join(OUTPUT_FORMATS)}")
    one_file = len(inputs) == 1 and not inputs[0].is_dir() and not _is_pattern(inputs[0])
    if output is not None and not output.is_dir():
        if one_file and (output.exists() or output.suffix):
            _check_output_file(output, suffix, output_format)
            return with_problems([Job(inputs[0], output)])
        if output.exists():
            raise EnhanceEdgeError(f"-o {str(output)!r} is an existing file, but several inputs, a folder or a "
                                   f"pattern need -o to be a folder")
        if format_for(output):
            raise EnhanceEdgeError(f"-o {str(output)!r} is an image file name, but several inputs, a folder or a "
                                   f"pattern need -o to be a folder (create it first to use that name)")
    suffix = output_suffix(suffix, output, scale, output_size)
    if output is not None and not suffix and any(_real_path(path) == _real_path(output) for path in inputs):
        raise EnhanceEdgeError(f"-o {str(output)!r} is an input folder: its images would be written over "
                               f"themselves; choose another -o, or give --suffix")
    return name_jobs(expand_inputs(inputs, recursive, exclude=output), output, suffix, output_format)


def output_suffix(suffix: str | None, output, scale: int, output_size: OutputSize) -> str:
    """What output names add to their input's: ``suffix``, else NAME_x{scale} (or the factor or
    target of ``output_size``) beside the inputs, nothing in an output folder."""
    if suffix is not None:
        return suffix
    return output_size.suffix(scale) if output is None else ""


def name_jobs(found: list[InputFile], output, suffix: str, output_format: str | None,
              storage: Storage | None = None) -> list[Job]:
    """The job planner's naming, for paths and URIs alike (``storage``: LOCAL_FILES, or
    uris.URI_FILES): each input's output is NAME{suffix}.EXT beside it, or, under the folder
    ``output``, at the input's place relative to what was listed; an input a folder listing took
    that is one of these outputs (an earlier run's) is left out; problems are marked (with_problems)."""
    storage = storage or LOCAL_FILES
    jobs = []
    for item in found:
        name = f"{item.relative.stem}{suffix}{output_extension(item.relative, output_format)}"
        target = (storage.beside(item.path, name) if output is None
                  else storage.inside(output, item.relative.parent / name))
        # expand_inputs keeps a pattern only when nothing matched it
        pattern = isinstance(item.path, Path) and _is_pattern(item.path)
        jobs.append(Job(item.path, target, "no file matches this pattern" if pattern else None))
    # Outputs of an earlier run lie beside their inputs: listing a folder must not take them as inputs.
    earlier_outputs = {storage.key(job.target) for job in jobs}
    jobs = [job for job, item in zip(jobs, found)
            if not (item.from_folder and storage.key(job.source) in earlier_outputs)]
    return with_problems(jobs, key=storage.key)


def _check_output_file(output: Path, suffix: str | None, output_format: str | None) -> None:
    """-o naming the output of the one input must be an image file name that agrees with the options."""
    image_format = format_for(output)
    if image_format is None and output.exists():
        raise EnhanceEdgeError(f"-o {str(output)!r} is an existing file but not an image file name; "
                               f"name an image ({_IMAGE_EXTENSIONS}) or a folder")
    if image_format is None:
        raise EnhanceEdgeError(f"-o {str(output)!r}: {output.suffix!r} is not an image format enhance-edge can write "
                               f"({_IMAGE_EXTENSIONS}); for a folder of that name, create it first")
    if output_format is not None and image_format != OUTPUT_FORMATS[output_format][0]:
        raise EnhanceEdgeError(f"-o {str(output)!r} is a {image_format} name but --format is {output_format}")
    if suffix is not None:
        raise EnhanceEdgeError(f"--suffix {suffix!r} does not apply when -o {str(output)!r} names the output file")


def with_problems(jobs: list[Job], key: Callable[[Path], Hashable] = _real_path) -> list[Job]:
    """Mark jobs that would overwrite an input or another job's output; the rest run. ``key``
    gives what two names of one file share (uris: a path and a file:// URI of it)."""
    sources = {key(job.source) for job in jobs}
    claimed: dict[Hashable, Path] = {}
    checked = []
    for job in jobs:
        target = key(job.target)
        problem = job.problem
        if problem is None and target in sources:
            problem = f"output {str(job.target)!r} would overwrite an input; choose another -o or --suffix"
        elif problem is None and target in claimed:
            problem = f"output {str(job.target)!r} is already the output of {str(claimed[target])!r}"
        elif problem is None:
            claimed[target] = job.source
        checked.append(Job(job.source, job.target, problem))
    return checked


def _over_budget(upscaler: Upscaler, image: Image.Image) -> str | None:
    """Why upscaling ``image`` will exceed the upscaler's memory budget; None when it keeps to it."""
    needed = upscaler.peak_memory(image.width, image.height, image.mode)
    resized = ""
    if not upscaler.output_size.is_model_scale:
        width, height = upscaler.output_dimensions(image.width, image.height)
        needed += _RESIZED_BYTES_PER_PIXEL.get(image.mode, 24) * width * height
        resized = f" to {width}x{height}"
    if needed <= upscaler.max_memory:
        return None
    return (f"upscaling this {image.width}x{image.height} image{resized} takes about {math.ceil(needed / 2**20)} "
            f"MiB, over the memory budget of {upscaler.max_memory / 2**20:g} MiB (--max-memory): only the model run "
            f"is tiled, the whole-image buffers are not")


def strength_setting(upscaler: Upscaler) -> float | str | None:
    """The strength an upscaler is set to, as a batch's report names it once: "auto" or a number; None
    for a model without the strength input. Each FileResult has the number a file ran at."""
    if not upscaler.info.conditioned:
        return None
    return upscaler.strength


def read_for_upscale(upscaler: Upscaler, source: Path | BinaryIO, image_format: str | None,
                     max_pixels: int = DEFAULT_MAX_PIXELS, *, png_if_too_large: bool = False,
                     warn: Callable[[str], None] | None = None) -> tuple[Image.Image, SourceInfo, str]:
    """Read ``source`` (a path, or a binary file whose str() names it) upright, in a working
    mode, with what its output inherits, and choose the output's format: ``image_format``, else
    the input's own. A result too large for that format is an ImageError naming the file before
    any work is done, or, with ``png_if_too_large`` (for a format nobody asked for), PNG.
    ``warn`` is told, naming the file, when its upscale will exceed the upscaler's memory budget."""
    image, info = imageio.read_image(source, max_pixels)
    image_format = image_format or output_format_for(info.format)
    size = upscaler.output_dimensions(image.width, image.height)
    try:
        check_output_pixels(size, max_pixels, upscaler.scale)
    except ImageError as exc:
        raise ImageError(f"{source}: {exc}") from None
    try:
        check_size(image_format, size)
    except ImageError as exc:
        if not png_if_too_large:
            raise ImageError(f"{source}: {exc}") from None
        image_format = "PNG"  # which has no size limit
    if warn is not None and (excess := _over_budget(upscaler, image)) is not None:
        warn(f"{source}: {excess}")
    return image, info, image_format


def write_upscaled(upscaler: Upscaler, image: Image.Image, info: SourceInfo, handle: BinaryIO, image_format: str, *,
                   name: str | Path, target: str | Path | None = None, quality: int = DEFAULT_QUALITY,
                   strength: float | str | None = None,
                   progress: Callable[[int], None] | None = None) -> tuple[int, int]:
    """Upscale an image from read_for_upscale and encode it into ``handle`` with the input's
    metadata and the provenance tags; the result's size. Errors of the upscale name ``name`` (the
    input); errors of the encoding ``target`` (default: ``name``)."""
    try:
        upscale = upscaler.upscale_for_jpeg if image_format == "JPEG" else upscaler.upscale
        result = upscale(image, progress=progress, strength=strength)
    except (ImageError, ModelError) as exc:  # e.g. a model that fails on this size: name the file
        raise type(exc)(f"{name}: {exc}") from None
    try:
        write_image(result, handle, image_format, info,
                    provenance(upscaler.output_size.describe(upscaler.scale), upscaler.model_name), quality,
                    upscaler.threads)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # Pillow's encoders, or the file system
        raise ImageError(f"{target or name}: cannot write ({os_reason(exc) if isinstance(exc, OSError) else exc})") \
            from None
    return result.size


def _counting_tiles(upscaler: Upscaler, image: Image.Image, progress: Callable[[int], None] | None,
                    tiles: Callable[[int, int], None] | None) -> Callable[[int], None] | None:
    """``progress`` that first tells ``tiles`` (done, total) of the model runs of ``image``: the
    upscaler calls it as each tile ends. ``progress`` itself when there is no ``tiles``."""
    if tiles is None:
        return progress
    total = tile_count(image.width, image.height, upscaler.tile_for(image.width, image.height, image.mode))
    done = 0

    def advance(pixels: int) -> None:
        nonlocal done
        done += 1
        tiles(done, total)
        if progress is not None:
            progress(pixels)

    return advance


class Storage(Protocol):
    """Where a job's files are, for upscale_file: local paths (LOCAL_FILES), or, for a job with a
    URI at either end, enhance_edge.apps.uris.URI_FILES."""

    def exists(self, where) -> bool:
        """Whether the file ``where`` exists (an existing output is complete: writes are atomic)."""

    def source(self, where, max_pixels: int) -> Path | BinaryIO:
        """What read_for_upscale reads for the input ``where`` (whose str() names it)."""

    def name(self, where) -> Path:
        """The file name of ``where``, whose extension says the output's format."""

    def beside(self, where, name: str):
        """The file ``name`` in the folder of ``where``."""

    def inside(self, folder, relative: Path):
        """The file at ``relative`` inside ``folder``."""

    def key(self, where) -> Hashable:
        """What two names of one file share (a path and a file:// URI of it: its real path)."""

    def output(self, where) -> contextlib.AbstractContextManager[BinaryIO]:
        """A binary file that becomes ``where`` whole when the block ends without an exception, or
        nothing; ImageError naming ``where`` when the storage refuses."""


class _LocalFiles:
    """Local paths: the output is opened (its folders made) before the upscale, so an unwritable
    one fails at once, not after minutes of work."""

    def exists(self, where: Path) -> bool:
        return where.exists()

    def source(self, where: Path, max_pixels: int) -> Path:
        return where

    def name(self, where: Path) -> Path:
        return where

    def beside(self, where: Path, name: str) -> Path:
        return where.parent / name

    def inside(self, folder: Path, relative: Path) -> Path:
        return folder / relative

    def key(self, where: Path) -> Hashable:
        return _real_path(where)

    @contextlib.contextmanager
    def output(self, where: Path):
        created = _missing_folders(where.parent)
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(where) as handle:
                yield handle
        except BaseException as exc:
            for folder in created:  # a failed file leaves no empty folder; one that another file went into stays
                with contextlib.suppress(OSError):
                    folder.rmdir()
            if isinstance(exc, OSError):  # the file system: the folder, the temporary file, its writing or renaming
                raise ImageError(f"{where}: cannot write ({os_reason(exc)})") from None
            raise


LOCAL_FILES: Storage = _LocalFiles()


def upscale_file(upscaler: Upscaler, job: Job, *, overwrite: bool = False, quality: int = DEFAULT_QUALITY,
                 max_pixels: int = DEFAULT_MAX_PIXELS, strength: float | str | None = None,
                 progress: Callable[[int], None] | None = None,
                 warn: Callable[[str], None] | None = None,
                 tiles: Callable[[int, int], None] | None = None, storage: Storage = LOCAL_FILES) -> FileResult:
    """Read, upscale and atomically write one image with its metadata and provenance tags: the one
    single-file path of the command line, the API, and a cluster's workers (paths or URIs, through
    ``storage``).

    The format follows the output's extension (the input's format when it has none Pillow
    can write). ``strength`` overrides the upscaler's own ("auto" or 0..1). ``warn`` is told,
    naming the file, when the upscale will exceed the upscaler's memory budget; ``tiles`` the
    (done, total) of its model runs as each ends, before ``progress``. Returns what was done
    (status DONE, or SKIPPED: the output exists and ``overwrite`` is off). Raises
    EnhanceEdgeError subclasses naming the file; writes nothing then.
    """
    start = time.perf_counter()
    if job.problem is not None:
        raise EnhanceEdgeError(f"{job.source}: {job.problem}")
    if strength is not None:
        try:
            strength = upscaler.checked_strength(strength)
        except EnhanceEdgeError as exc:
            raise type(exc)(f"strength: {exc}") from None
    model, precision = upscaler.model_name, model_precision(upscaler)
    if not overwrite and storage.exists(job.target):
        return FileResult(job.source, job.target, Outcome.SKIPPED, model, precision, None,
                          seconds=time.perf_counter() - start)
    image, source, image_format = read_for_upscale(upscaler, storage.source(job.source, max_pixels),
                                                   format_for(storage.name(job.target)), max_pixels, warn=warn)
    with storage.output(job.target) as handle:
        output_size = write_upscaled(upscaler, image, source, handle, image_format, name=job.source,
                                     target=job.target, quality=quality, strength=strength,
                                     progress=_counting_tiles(upscaler, image, progress, tiles))
    return FileResult(job.source, job.target, Outcome.DONE, model, upscaler.last_precision, upscaler.last_strength,
                      image.size, output_size, time.perf_counter() - start)


class BatchReport(Protocol):
    """What upscale_jobs tells its caller (the CLI's lines, bar and JSON) as it goes."""

    def progress(self, pixels: int) -> None:
        """``pixels`` more input pixels are done (a failed or skipped file counts whole)."""

    def warning(self, message: str) -> None:
        """A notice about one file, naming it (e.g. it will exceed the memory budget)."""

    def tiles(self, done: int, total: int) -> None:
        """``done`` of the ``total`` model runs (tiles) of the file being upscaled are over."""

    def finished(self, result: FileResult) -> None:
        """One job is over: done, skipped or failed."""


def upscale_jobs(upscaler: Upscaler, jobs: list[Job], pixels: list[int], report: BatchReport,
                 settings: UpscaleSettings) -> None:
    """Run upscale_file over ``jobs`` in order, with the files' settings (overwrite, quality,
    max_pixels), each file's failure a FAILED result, not an exception; ``pixels``: each job's input
    pixel count (imageio.probe_pixels), so progress adds up to their sum. Interrupts
    (KeyboardInterrupt, a closed pipe) propagate after the file being written has been removed."""
    for job, size in zip(jobs, pixels):
        done, start = 0, time.perf_counter()

        def advance(count: int) -> None:
            nonlocal done
            done += count
            report.progress(count)

        try:
            result = upscale_file(upscaler, job, overwrite=settings.overwrite, quality=settings.quality,
                                  max_pixels=settings.max_pixels, progress=advance, warn=report.warning,
                                  tiles=report.tiles)
        except EnhanceEdgeError as exc:
            result = failed_result(upscaler, job, str(exc), time.perf_counter() - start)
        except MemoryError:  # past a raised --max-pixels: this file fails, the batch goes on
            result = failed_result(upscaler, job, f"{job.source}: out of memory (a lower --max-pixels refuses such "
                                   f"files before the work)", time.perf_counter() - start)
        report.finished(result)
        report.progress(max(0, size - done))


def unsearched_folders(inputs: list[Path]) -> dict[Path, int]:
    """Input folders whose sub-folders a listing without ``recursive`` does not search, with how
    many (hidden ones are never searched, so not counted)."""
    counts = {}
    for path in inputs:
        if path.is_dir():
            count = sum(1 for entry in path.iterdir() if entry.is_dir() and not entry.name.startswith("."))
            if count:
                counts[path] = count
    return counts


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing
