"""What the web app does, apart from HTTP: limits, the model choice, the queue and progress.

Uploads go through the same reading (bomb guard included), upscaling and writing functions as
`enhance-edge upscale` (batch.read_for_upscale, batch.write_upscaled), so a bad file gets the
same one-line message on the page as in the terminal, and every result carries the provenance
tags. Only names of bundled models are accepted: the web never picks a file path.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import io
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO, Iterator

from PIL import Image

from ...core.batch import read_for_upscale, write_upscaled
from ...errors import EnhanceEdgeError, ModelError
from ...io.imageio import OUTPUT_FORMATS, NamedBytes, format_for
from ...core.model import BUNDLED_MODELS, BundledModel, bundled_models
from ...core.output_size import OutputSize
from ...core.strength import checked_strength
from ...core.upscale_settings import UpscaleSettings
from ...core.upscaler import Upscaler
from .limits import Limits, MiB

# "auto": the bundled int8 file where it is installed and this CPU sums int8 exactly and fast, else fp32.
DEFAULT_PRECISION = "auto"
JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# After an upscale of at least this many input pixels the model's session is closed (it is
# reopened, in about 0.1 s, by the next request): onnxruntime's memory arena keeps its peak, so
# one 1000x1000 upload left the server holding 376 MiB, against 87 MiB with the session closed.
RELEASE_AFTER_PIXELS = 1_000_000


class UploadTooLarge(EnhanceEdgeError):
    """The upload is over the server's byte limit (HTTP 413)."""


class BadRequest(EnhanceEdgeError):
    """The request names a model, precision or job id the server does not accept (HTTP 422)."""


class ServerBusy(EnhanceEdgeError):
    """Too many requests are already waiting for the model (HTTP 503)."""


class UploadStalled(EnhanceEdgeError):
    """The client sends its upload too slowly, or has stopped sending it (HTTP 408)."""


class ClientGone(EnhanceEdgeError):
    """The client closed its connection: its request is dropped from the queue, or stopped."""


def _find_malloc_trim():
    """glibc's malloc_trim, or None (other C libraries return freed memory by themselves or not at all)."""
    library = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(library), "malloc_trim", None) if library else None
    except OSError:
        return None


_MALLOC_TRIM = _find_malloc_trim()


def return_freed_memory() -> None:
    """Hand the heap's free pages back to the system: glibc keeps them for reuse, so without
    this the server would stay at the peak of its largest upscale."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class ModelCatalog:
    """The bundled models a request may name, each opened once on first use with ``settings``
    (the server's provider, threads and memory budget) and the model and precision asked for."""

    def __init__(self, settings: UpscaleSettings | None = None):
        self.settings = settings or UpscaleSettings()
        self._upscalers: dict[tuple[str, str], Upscaler] = {}
        self._files: list[BundledModel] | None = None
        self._lock = threading.Lock()

    @property
    def default_model(self) -> str:
        return BUNDLED_MODELS[0]

    @property
    def files(self) -> list[BundledModel]:
        """The bundled model files installed, as `enhance-edge models` lists them (read once)."""
        if self._files is None:
            self._files = bundled_models()
        return self._files

    @property
    def installed(self) -> dict[str, list[str]]:
        """Bundled model name -> the precisions a request may ask for: auto and the files installed."""
        installed: dict[str, list[str]] = {}
        for bundled in self.files:
            installed.setdefault(bundled.name, ["auto"]).append(bundled.precision)
        return installed

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

    def check_strength(self, model: str, precision: str, strength: str | None) -> float | str:
        """The strength a request asks for ("auto" when none), checked as the CLI's --strength
        (strength.checked_strength, by the model's name: the web shows no path); BadRequest otherwise."""
        upscaler = self.upscaler(model, precision)
        try:
            return checked_strength(strength, upscaler.info.conditioned, model)
        except ModelError as exc:
            raise BadRequest(str(exc)) from None
        except EnhanceEdgeError as exc:
            raise BadRequest(f"invalid strength: {exc}") from None

    def upscaler(self, model: str, precision: str) -> Upscaler:
        model, precision = self.check(model, precision)
        with self._lock:
            if (model, precision) not in self._upscalers:
                self._upscalers[model, precision] = Upscaler.from_settings(
                    self.settings.replace(model=model, precision=precision))
            return self._upscalers[model, precision]

    def release(self, model: str, precision: str) -> None:
        """Close the session of (model, precision), with the memory its run kept; reopened on next use."""
        with self._lock:
            self._upscalers.pop((model, precision), None)

    def describe(self) -> list[dict]:
        """What GET /api/models lists per model: name, scale, the precisions a request may ask for,
        what "auto" runs here, whether it takes a strength, validation scores, and per installed
        file what `enhance-edge models` shows (test PSNR, size, cost)."""
        described = []
        for name, precisions in self.installed.items():
            upscaler = self.upscaler(name, DEFAULT_PRECISION)
            described.append({"name": name, "scale": upscaler.scale, "precisions": precisions,
                              "default_precision": DEFAULT_PRECISION, "auto_precision": upscaler.precision,
                              "conditioned": upscaler.info.conditioned,
                              "validation": upscaler.info.json_field("validation"),
                              "files": {bundled.precision: {"test_psnr": bundled.test_psnr,
                                                            "file_bytes": bundled.file_bytes,
                                                            "macs_per_input_pixel": bundled.macs_per_input_pixel}
                                        for bundled in self.files if bundled.name == name}})
        return described


@dataclass(eq=False)  # each request is its own place in the line, however alike two are
class JobProgress:
    """How far one request is, for GET /api/progress/{job}."""

    running: bool = False
    pixels_done: int = 0
    pixels_total: int = 0


class UpscaleQueue:
    """One upscale runs at a time, the others wait in arrival order; when ``max_waiting``
    already wait, ServerBusy. A request whose client has gone leaves the line (``abandon``).
    Used from worker threads."""

    def __init__(self, max_waiting: int):
        self.max_waiting = max_waiting
        self._line: list[JobProgress] = []  # the running request first, then the waiting ones
        self._changed = threading.Condition()

    def ahead_of(self, entry: JobProgress) -> int | None:
        """How many requests are before ``entry`` in the line (the running one included); None if not in it."""
        with self._changed:
            return self._line.index(entry) if entry in self._line else None

    def abandon(self, abandoned: threading.Event) -> None:
        """Set ``abandoned`` (the client of that request has gone) and wake the line to see it."""
        with self._changed:
            abandoned.set()
            self._changed.notify_all()

    @contextlib.contextmanager
    def turn(self, entry: JobProgress, abandoned: threading.Event | None = None) -> Iterator[float]:
        """Wait for the model; yields the seconds spent waiting. ClientGone if ``abandoned``
        is set (through ``abandon``) while waiting."""
        start = time.perf_counter()
        with self._changed:
            if len(self._line) > self.max_waiting:
                raise ServerBusy(f"the server is busy ({len(self._line)} requests ahead); try again shortly")
            self._line.append(entry)
            self._changed.notify_all()
            self._changed.wait_for(lambda: self._line[0] is entry or (abandoned is not None and abandoned.is_set()))
            if self._line[0] is not entry:
                self._line.remove(entry)
                self._changed.notify_all()
                raise ClientGone("the client went away while its request waited")
        try:
            yield time.perf_counter() - start
        finally:
            with self._changed:
                self._line.remove(entry)
                self._changed.notify_all()

    def wait_until_size(self, size: int, timeout: float) -> bool:
        """Block until ``size`` requests are running or waiting (for tests and monitoring)."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._line) == size, timeout)


@dataclass(frozen=True)
class UpscaleResult:
    data: bytes
    media_type: str
    filename: str
    model: str
    precision: str
    strength: float | str | None  # as asked for ("auto": estimated per image); None: the model takes none
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    wait_seconds: float
    seconds: float


def upload_name(filename: str | None) -> str:
    """The base name a browser or script gave the upload, safe to echo; 'upload' if none."""
    name = PureWindowsPath(PurePosixPath(filename or "").name).name
    name = "".join(c for c in name if c.isprintable() and c not in '"\\')
    return name[:200] or "upload"


def _download_name(name: str, image_format: str, scale: int) -> str:
    """NAME_x{scale}.EXT with the extension of the format the result is in."""
    path = Path(name)
    if format_for(path) == image_format:
        extension = path.suffix
    else:
        canonical = {pillow_format: extension for pillow_format, extension in OUTPUT_FORMATS.values()}
        extension = canonical.get(image_format) or next(
            (ext for ext, known in Image.registered_extensions().items() if known == image_format), "")
    return f"{path.stem}{OutputSize().suffix(scale)}{extension}"


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
            ahead = self.queue.ahead_of(entry) if entry is not None else None
            if entry is None or ahead is None:
                return None
            if not entry.running:
                return {"state": "waiting", "ahead": ahead}
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
                       precision: str | None = None, job: str | None = None,
                       abandoned: threading.Event | None = None, strength: str | None = None) -> UpscaleResult:
        """Blocking (run it in a worker thread): queue, read, upscale and encode one upload.

        ``strength`` is "auto" (or None) or a number from 0 to 1, for a model that takes one.
        ``job`` is an optional id under which progress() reports this request. Once
        ``abandoned`` is set (through ``queue.abandon``: the client has gone) the request
        leaves the queue, or stops at its next tile, with ClientGone."""
        name = upload_name(filename)
        model, precision = self.catalog.check(model, precision)
        level = self.catalog.check_strength(model, precision, strength)
        with self._tracked(job) as entry, self.queue.turn(entry, abandoned) as waited:
            try:
                return self._upscale(entry, source, name, model, precision, level, abandoned, waited)
            except EnhanceEdgeError as exc:
                # Its traceback holds the run's frames, their image buffers and the model session:
                # dropped, so that they are freed now, before the release below, not when the garbage
                # collector breaks the cycle the exception joins on its way back (a worker's future).
                raise exc.with_traceback(None)
            finally:
                if entry.pixels_total >= RELEASE_AFTER_PIXELS:
                    self.catalog.release(model, precision)
                    return_freed_memory()

    def _upscale(self, entry: JobProgress, source: BinaryIO, name: str, model: str, precision: str,
                 strength: float | str, abandoned: threading.Event | None, waited: float) -> UpscaleResult:
        start = time.perf_counter()
        entry.running = True
        data = source.read(self.limits.max_upload_bytes + 1)
        if len(data) > self.limits.max_upload_bytes:
            raise UploadTooLarge(f"{name}: file is over {self.limits.max_upload_bytes / MiB:g} MiB, "
                                 "the most this server accepts")
        upscaler = self.catalog.upscaler(model, precision)
        # The input's format, as the CLI keeps it; one too small for the result (JPEG, WebP) gives a PNG.
        image, source_info, image_format = read_for_upscale(upscaler, NamedBytes(data, name), None,
                                                            self.limits.max_pixels, png_if_too_large=True)
        del data
        entry.pixels_total = image.width * image.height

        def advance(pixels: int) -> None:
            if abandoned is not None and abandoned.is_set():
                raise ClientGone(f"{name}: the client went away during the upscale")
            entry.pixels_done += pixels

        advance(0)  # a client gone while its upload was decoded: before the model runs, not after
        encoded = io.BytesIO()
        output_size = write_upscaled(upscaler, image, source_info, encoded, image_format, name=name,
                                     strength=strength, progress=advance)
        return UpscaleResult(encoded.getvalue(), Image.MIME.get(image_format, "application/octet-stream"),
                             _download_name(name, image_format, upscaler.scale), model, upscaler.last_precision,
                             strength if upscaler.info.conditioned else None, image.size, output_size, waited,
                             time.perf_counter() - start)
