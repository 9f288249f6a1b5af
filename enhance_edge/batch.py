"""Files in, files out: which output each input gets, and upscaling one file safely.

A batch never overwrites an input, does not replace existing outputs unless asked, and
writes each output atomically, so an interrupted run leaves only whole images behind and
can simply be run again.
"""

from __future__ import annotations

import enum
import glob
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from . import imageio
from .errors import EnhanceEdgeError, ImageError, ModelError
from .fileio import atomic_output
from .imageio import DEFAULT_MAX_PIXELS, DEFAULT_QUALITY, OUTPUT_FORMATS, format_for, provenance, write_image
from .upscaler import Upscaler

DEFAULT_SUFFIX = "_x2"  # for outputs written beside their inputs
_GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path
    problem: str | None = None  # why this job must not run; reported as its failure


class Outcome(enum.Enum):
    DONE = "done"
    SKIPPED = "skipped"  # the output exists and overwriting was not asked for


@dataclass(frozen=True)
class InputFile:
    path: Path
    relative: Path  # where its output goes under an output folder
    from_folder: bool  # found by listing a folder, rather than named


def _is_listed_image(path: Path, root: Path) -> bool:
    """Folder listings take image files by extension; hidden files (and our .part temporaries) never."""
    hidden = any(part.startswith(".") for part in path.relative_to(root).parts)
    return (not hidden and path.suffix.lower() in Image.registered_extensions()
            and (path.is_file() or path.is_symlink()))  # a broken link is reported, not hidden


def expand_inputs(inputs: list[Path], recursive: bool = False, exclude: Path | None = None) -> list[InputFile]:
    """Files as given; folders contribute their image files (all levels with ``recursive``);
    patterns (quoted globs, ** included) their matches. A folder's listing skips ``exclude``
    when it lies inside (the output folder, whose images a rerun must not take as inputs)."""
    found: list[InputFile] = []
    for path in inputs:
        if path.is_dir():
            skipped = exclude.resolve() if exclude is not None else None
            if skipped is not None and not (skipped != path.resolve() and skipped.is_relative_to(path.resolve())):
                skipped = None
            listing = path.rglob("*") if recursive else path.iterdir()
            found += [InputFile(f, f.relative_to(path), True) for f in sorted(listing) if _is_listed_image(f, path)
                      and not (skipped is not None and f.resolve().is_relative_to(skipped))]
        elif not path.exists() and _GLOB_CHARACTERS & set(str(path)):
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True) if Path(m).is_file())
            found += [InputFile(m, Path(m.name), False) for m in matches] or [InputFile(path, Path(path.name), False)]
        else:
            found.append(InputFile(path, Path(path.name), False))
    return found


def _output_suffix(source: Path, output_format: str | None) -> str:
    """The output's extension: --format's, else the input's when Pillow can write it, else .png."""
    if output_format is not None:
        return OUTPUT_FORMATS[output_format][1]
    return source.suffix if format_for(source) else ".png"


def plan_jobs(inputs: list[Path], output: Path | None, *, recursive: bool = False, suffix: str | None = None,
              output_format: str | None = None) -> list[Job]:
    """One file and an -o with an image extension: -o is the file. Otherwise -o is a folder
    and each output keeps its input's name (and sub-folder, with ``recursive``). No -o:
    NAME_x2.EXT beside each input. ``suffix`` replaces the default ("_x2" beside inputs,
    none in -o); ``output_format`` (a key of OUTPUT_FORMATS) replaces the input's format."""
    if output_format is not None and output_format not in OUTPUT_FORMATS:
        raise EnhanceEdgeError(f"unknown output format {output_format!r}; known: {', '.join(OUTPUT_FORMATS)}")
    single_file = len(inputs) == 1 and not inputs[0].is_dir() and not _GLOB_CHARACTERS & set(str(inputs[0]))
    if output is not None and single_file and not output.is_dir() and format_for(output):
        if output_format is not None and format_for(output) != OUTPUT_FORMATS[output_format][0]:
            raise EnhanceEdgeError(f"-o {str(output)!r} is a {format_for(output)} name but --format is {output_format}")
        jobs = [Job(inputs[0], output)]
    else:
        if output is not None and output.exists() and not output.is_dir():
            raise EnhanceEdgeError(f"-o {str(output)!r} is a file, but several inputs need a folder")
        suffix = (DEFAULT_SUFFIX if output is None else "") if suffix is None else suffix
        found = expand_inputs(inputs, recursive, exclude=output)
        jobs = []
        for item in found:
            name = f"{item.path.stem}{suffix}{_output_suffix(item.path, output_format)}"
            folder = item.path.parent if output is None else output / item.relative.parent
            jobs.append(Job(item.path, folder / name))
        # Outputs of an earlier run lie beside their inputs: listing a folder must not take them as inputs.
        earlier_outputs = {job.target.resolve() for job in jobs}
        jobs = [job for job, item in zip(jobs, found)
                if not (item.from_folder and job.source.resolve() in earlier_outputs)]
    return _with_problems(jobs)


def _with_problems(jobs: list[Job]) -> list[Job]:
    """Mark jobs that would overwrite an input or another job's output; the rest run."""
    sources = {job.source.resolve(strict=False) for job in jobs}
    claimed: dict[Path, Path] = {}
    checked = []
    for job in jobs:
        target = job.target.resolve(strict=False)
        problem = None
        if target in sources:
            problem = f"output {str(job.target)!r} would overwrite an input; choose another -o or --suffix"
        elif target in claimed:
            problem = f"output {str(job.target)!r} is already the output of {str(claimed[target])!r}"
        else:
            claimed[target] = job.source
        checked.append(Job(job.source, job.target, problem))
    return checked


def read_image(source: str | Path | BinaryIO, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image, upright and in a working mode; its ``format`` is the file's format.

    (imageio.read_image also returns the metadata an output inherits.)"""
    image, info = imageio.read_image(source, max_pixels)
    image.format = info.format
    return image


def upscale_file(upscaler: Upscaler, job: Job, *, overwrite: bool = False, quality: int = DEFAULT_QUALITY,
                 max_pixels: int = DEFAULT_MAX_PIXELS, progress: Callable[[int], None] | None = None) -> Outcome:
    """Read, upscale and atomically write one image with its metadata and provenance tags.

    The format follows the output's extension (the input's format when it has none Pillow
    can write). Raises EnhanceEdgeError subclasses naming the file; writes nothing then.
    """
    if job.problem is not None:
        raise EnhanceEdgeError(f"{job.source}: {job.problem}")
    if job.target.exists() and not overwrite:
        return Outcome.SKIPPED
    image, source = imageio.read_image(job.source, max_pixels)
    try:
        result = upscaler.upscale(image, progress=progress)
    except (ImageError, ModelError) as exc:  # e.g. a model that fails on this size: name the file
        raise type(exc)(f"{job.source}: {exc}") from None
    del image
    image_format = format_for(job.target) or (source.format if source.format in Image.SAVE else "PNG")
    tags = provenance(upscaler.scale, upscaler.model_name)
    try:
        job.target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(job.target) as handle:
            write_image(result, handle, image_format, source, tags, quality)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # Pillow's encoders and the file system
        raise ImageError(f"{job.target}: cannot write ({exc})") from None
    return Outcome.DONE
