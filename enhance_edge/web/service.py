"""What the web app does, apart from HTTP: limits, the model choice, the queue and progress.

Uploads go through the same reading (bomb guard included), upscaling and writing code as
`enhance-edge upscale`, so a bad file gets the same one-line message on the page as in the
terminal, and every result carries the provenance tags. Only names of bundled models are
accepted: the web never picks a file path.
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO, Iterator

from PIL import Image

from ..batch import scale_suffix
from ..errors import EnhanceEdgeError, ImageError
from ..imageio import (DEFAULT_QUALITY, OUTPUT_FORMATS, check_size, format_for, output_format_for, provenance,
                       read_image, write_image)
from ..model import BUNDLED_MODELS, bundled_model_path, bundled_models
from ..upscaler import DEFAULT_MAX_MEMORY, Upscaler

MiB = 1024 * 1024
# "auto": the bundled int8 file where it is installed and exact on this CPU, else fp32.
DEFAULT_PRECISION = "auto"
JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class UploadTooLarge(EnhanceEdgeError):
    """The upload is over the server's byte limit (HTTP 413)."""


class BadRequest(EnhanceEdgeError):
    """The request names a model, precision or job id the server does not accept (HTTP 422)."""


class ServerBusy(EnhanceEdgeError):
    """Too many requests are already waiting for the model (HTTP 503)."""


@dataclass(frozen=True)
class Limits:
    """How much one request may send and how many may wait; they bound the server's memory
    (the Upscaler itself keeps the model run within its memory budget by tiling)."""

    max_upload_bytes: int = 25 * MiB
    max_pixels: int = 16_000_000
    max_waiting: int = 8

    def __post_init__(self):
        for name in ("max_upload_bytes", "max_pixels"):
            if getattr(self, name) < 1:
                raise EnhanceEdgeError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_waiting < 0:
            raise EnhanceEdgeError(f"max_waiting must be >= 0, got {self.max_waiting}")


class ModelCatalog:
    """The bundled models a request may name, each opened once on first use."""

    def __init__(self, provider: str = "cpu", threads: int | None = None, max_memory: int = DEFAULT_MAX_MEMORY):
        self.provider, self.threads, self.max_memory = provider, threads, max_memory
        self._upscalers: dict[tuple[str, str], Upscaler] = {}
        self._installed: dict[str, list[str]] | None = None
        self._lock = threading.Lock()

    @property
    def default_model(self) -> str:
        return BUNDLED_MODELS[0]

    @property
    def installed(self) -> dict[str, list[str]]:
        """Bundled model name -> the precisions a request may ask for: auto and the files installed."""
        if self._installed is None:
            installed: dict[str, list[str]] = {}
            for bundled in bundled_models():
                installed.setdefault(bundled.name, ["auto"]).append(bundled.precision)
            self._installed = installed
        return self._installed

    def check(self, model: str | None, precision: str | None) -> tuple[str, str]:
        """The (model, precision) a request asks for, defaults filled in; BadRequest otherwise."""
        model = model or self.default_model
        precision = precision or DEFAULT_PRECISION
        if model not in self.installed:
            raise BadRequest(f"unknown model {model!r}; available: {', '.join(self.installed)}")
        if precision not in self.installed[model]:
            raise BadRequest(f"unknown precision {precision!r} for model {model!r}; "
                             f"available: {', '.join(self.installed[model])}")
        return model, precision

    def upscaler(self, model: str, precision: str) -> Upscaler:
        model, precision = self.check(model, precision)
        with self._lock:
            if (model, precision) not in self._upscalers:
                self._upscalers[model, precision] = Upscaler(bundled_model_path(model, precision), self.provider,
                                                             self.threads, max_memory=self.max_memory)
            return self._upscalers[model, precision]

    def describe(self) -> list[dict]:
        """What GET /api/models lists: name, scale, the precisions installed and validation scores per model."""
        described = []
        for name, precisions in self.installed.items():
            info = self.upscaler(name, DEFAULT_PRECISION).info
            described.append({"name": name, "scale": info.scale, "precisions": precisions,
                              "default_precision": DEFAULT_PRECISION,
                              "validation": info.json_field("validation")})
        return described


class UpscaleQueue:
    """One upscale runs at a time, the others wait in arrival order; when ``max_waiting``
    already wait, ServerBusy. Used from worker threads."""

    def __init__(self, max_waiting: int):
        self.max_waiting = max_waiting
        self._issued = 0  # tickets handed out
        self._serving = 0  # the ticket whose turn it is
        self._changed = threading.Condition()

    def ahead_of(self, ticket: int) -> int:
        with self._changed:
            return max(0, ticket - self._serving)

    @contextlib.contextmanager
    def turn(self, on_ticket=lambda ticket: None) -> Iterator[float]:
        """Wait for the model; yields the seconds spent waiting. ``on_ticket(ticket)`` is
        called once the request has its place in the line."""
        start = time.perf_counter()
        with self._changed:
            if self._issued - self._serving > self.max_waiting:
                raise ServerBusy(f"the server is busy ({self._issued - self._serving} requests ahead); "
                                 "try again shortly")
            ticket = self._issued
            self._issued += 1
            on_ticket(ticket)
            self._changed.notify_all()
            self._changed.wait_for(lambda: self._serving == ticket)
        try:
            yield time.perf_counter() - start
        finally:
            with self._changed:
                self._serving += 1
                self._changed.notify_all()

    def wait_until_size(self, size: int, timeout: float) -> bool:
        """Block until ``size`` requests are running or waiting (for tests and monitoring)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._issued - self._serving == size, timeout)


@dataclass
class JobProgress:
    """How far one request is, for GET /api/progress/{job}."""

    ticket: int | None = None
    running: bool = False
    pixels_done: int = 0
    pixels_total: int = 0


@dataclass(frozen=True)
class UpscaleResult:
    data: bytes
    media_type: str
    filename: str
    model: str
    precision: str
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    wait_seconds: float
    seconds: float


def upload_name(filename: str | None) -> str:
    """The base name a browser or script gave the upload, safe to echo; 'upload' if none."""
    name = PureWindowsPath(PurePosixPath(filename or "").name).name
    name = "".join(c for c in name if c.isprintable() and c not in '"\\')
    return name[:200] or "upload"


class _NamedUpload(io.BytesIO):
    """Upload bytes whose str() is the upload's name, so read errors name the file as the CLI does."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.name = name

    def __str__(self) -> str:
        return self.name


def _download_name(name: str, image_format: str, scale: int) -> str:
    """NAME_x{scale}.EXT with the extension of the format the result is in."""
    path = Path(name)
    if format_for(path) == image_format:
        extension = path.suffix
    else:
        canonical = {pillow_format: extension for pillow_format, extension in OUTPUT_FORMATS.values()}
        extension = canonical.get(image_format) or next(
            (ext for ext, known in Image.registered_extensions().items() if known == image_format), "")
    return f"{path.stem}{scale_suffix(scale)}{extension}"


class UpscaleService:
    """Upscale one uploaded file at a time with a bundled model, within the limits."""

    def __init__(self, limits: Limits | None = None, catalog: ModelCatalog | None = None):
        self.limits = limits or Limits()
        self.catalog = catalog or ModelCatalog()
        self.queue = UpscaleQueue(self.limits.max_waiting)
        self._jobs: dict[str, JobProgress] = {}  # only requests in progress: at most the queue's size
        self._jobs_lock = threading.Lock()

    def progress(self, job: str) -> dict | None:
        """{"state": "waiting", "ahead": n} or {"state": "running", "fraction": f}; None if unknown."""
        with self._jobs_lock:
            entry = self._jobs.get(job)
            if entry is None or entry.ticket is None:
                return None
            if not entry.running:
                return {"state": "waiting", "ahead": self.queue.ahead_of(entry.ticket)}
            fraction = entry.pixels_done / entry.pixels_total if entry.pixels_total else 0.0
            return {"state": "running", "fraction": round(min(fraction, 1.0), 4)}

    @contextlib.contextmanager
    def _tracked(self, job: str | None) -> Iterator[JobProgress]:
        entry = JobProgress()
        job = job or None
        if job is not None:
            if not JOB_ID.fullmatch(job):
                raise BadRequest("job id must be 1 to 64 letters, digits, '-' or '_'")
            with self._jobs_lock:
                if job in self._jobs:
                    raise BadRequest(f"job id {job!r} is already in use")
                self._jobs[job] = entry
        try:
            yield entry
        finally:
            if job is not None:
                with self._jobs_lock:
                    del self._jobs[job]

    def upscale_upload(self, source: BinaryIO, filename: str | None, model: str | None = None,
                       precision: str | None = None, job: str | None = None) -> UpscaleResult:
        """Blocking (run it in a worker thread): queue, read, upscale and encode one upload.

        ``job`` is an optional id under which progress() reports this request."""
        name = upload_name(filename)
        model, precision = self.catalog.check(model, precision)
        with self._tracked(job) as entry, self.queue.turn(lambda ticket: setattr(entry, "ticket", ticket)) as waited:
            start = time.perf_counter()
            entry.running = True
            data = source.read(self.limits.max_upload_bytes + 1)
            if len(data) > self.limits.max_upload_bytes:
                raise UploadTooLarge(f"{name}: file is over {self.limits.max_upload_bytes / MiB:g} MiB, "
                                     "the most this server accepts")
            image, source_info = read_image(_NamedUpload(data, name), self.limits.max_pixels)
            del data
            entry.pixels_total = image.width * image.height
            upscaler = self.catalog.upscaler(model, precision)
            image_format = output_format_for(source_info.format)
            try:
                check_size(image_format, (image.width * upscaler.scale, image.height * upscaler.scale))
            except ImageError:  # too large for the input's format (JPEG, WebP): a PNG, which has no such limit
                image_format = "PNG"

            def advance(pixels: int) -> None:
                entry.pixels_done += pixels

            result = upscaler.upscale(image, progress=advance)
            encoded = io.BytesIO()
            try:
                write_image(result, encoded, image_format, source_info,
                            provenance(upscaler.scale, upscaler.model_name), DEFAULT_QUALITY)
            except (OSError, ValueError, KeyError, TypeError) as exc:  # Pillow's encoders
                raise ImageError(f"{name}: cannot encode the result as {image_format} ({exc})") from None
            seconds = time.perf_counter() - start
        return UpscaleResult(encoded.getvalue(), Image.MIME.get(image_format, "application/octet-stream"),
                             _download_name(name, image_format, upscaler.scale), model,
                             upscaler.info.metadata.get("precision", "fp32"),  # what "auto" resolved to
                             image.size, result.size,
                             waited, seconds)
