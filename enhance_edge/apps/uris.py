"""Inputs and outputs named by URIs (file://, s3://, gs://, ...), read and written through pyarrow's filesystems.

`upscale --cluster` takes URIs beside paths. A URI is opened with the filesystem that pyarrow's
FileSystem.from_uri gives for it (S3 and GCS credentials and regions come from each node's
environment, as pyarrow reads them); a plain path is opened as the single-process command opens
it. Outputs get the command's names. Each is encoded in memory, written under a temporary name
beside its target (``.NAME.XXXXXXXX.part``, as fileio's) and moved into place, so a target exists
only complete — a rename on a local disk, a server-side copy on an object store, both all or
nothing — and a rerun skips every target that exists.

A URI is kept as the string it is (pathlib would fold its ``//``); a Path is a local path. URIs
made here from listings percent-encode their names, as a URI must. pyarrow is imported when a
URI is first opened: it comes with the cluster extra (Ray Data needs it), not with the runtime.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import os
import posixpath
import re
import secrets
import stat
import time
from pathlib import Path
from urllib.parse import SplitResult, quote, unquote, urlsplit

from ..core.batch import LOCAL_FILES, InputFile, Job, Storage, expand_inputs, name_jobs, output_suffix
from ..errors import EnhanceEdgeError, ImageError, MissingExtraError
from ..io.fileio import PART_SUFFIX, STALE_PART_SECONDS, target_name, write_file
from ..io.imageio import NamedBytes, format_for, pillow_format
from ..core.output_size import OutputSize

Location = Path | str  # a local path, or a URI
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
LIST_PREFIX = "@"  # an input @FILE stands for the locations FILE lists
# Bundling weighs a URI input by its size (reading each header would cost a request per file):
# about 3 pixels a byte, a JPEG photo's; only how files share actors depends on it.
PIXELS_PER_BYTE = 3
# The most bytes a URI input is read to: the largest encoding Pillow reads a still image in
# (uncompressed 16-bit RGBA, 8 bytes a pixel) at --max-pixels, and room for its metadata (ICC
# profile, EXIF, XMP). Object stores have no streaming decode here, so the bytes are held whole.
BYTES_PER_PIXEL_AT_MOST = 8
METADATA_BYTES = 16 * 2**20
# The most bytes an input list (@FILE) is read to: millions of lines.
MAX_LIST_BYTES = 256 * 2**20
# Local file types, by st_mode, that are not files to read: opening a named pipe waits for a
# writer for ever, and a device such as /dev/zero never ends.
_NOT_REGULAR = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
                (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))


def is_uri(text: str) -> bool:
    """Whether ``text`` names a location by URI (scheme://...) rather than a local path."""
    return bool(_URI.match(text))


def location(text: str) -> Location:
    """A URI as the string it is, anything else as a Path."""
    return text if is_uri(text) else Path(text)


def _uri(parts: SplitResult, path: str) -> str:
    return f"{parts.scheme}://{parts.netloc}{path}" + (f"?{parts.query}" if parts.query else "")


def join(folder: str, relative: str) -> str:
    """The URI of ``relative`` (a path with / separators, not encoded) inside the folder URI ``folder``."""
    parts = urlsplit(folder)
    return _uri(parts, f"{parts.path.rstrip('/')}/{quote(relative)}")


def _parent(uri: str) -> str:
    parts = urlsplit(uri)
    return _uri(parts, posixpath.dirname(parts.path.rstrip("/")))


def file_name(where: Location) -> Path:
    """The file name a location ends in, decoded."""
    if isinstance(where, Path):
        return Path(where.name)
    return Path(unquote(posixpath.basename(urlsplit(where).path.rstrip("/"))))


def _pyarrow_fs():
    """pyarrow.fs; MissingExtraError in one line where the cluster extra is not installed."""
    try:
        return importlib.import_module("pyarrow.fs")
    except ImportError:
        raise MissingExtraError("a URI", "cluster", "pyarrow") from None


@functools.cache
def _filesystem(scheme: str, netloc: str, query: str):
    """pyarrow's filesystem for URIs that begin scheme://netloc (with options ``query``), and the
    path it gives that root; one per process and root (an S3 one asks the bucket's region)."""
    root = f"{scheme}://{netloc}/" + (f"?{query}" if query else "")
    try:
        return _pyarrow_fs().FileSystem.from_uri(root)
    except (ValueError, OSError) as exc:  # ArrowInvalid is a ValueError: a scheme pyarrow does not know
        raise EnhanceEdgeError(f"{root}: pyarrow cannot open it ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def resolve(uri: str):
    """(pyarrow filesystem, path in it) of ``uri``; the path without a trailing slash."""
    parts = urlsplit(uri)
    filesystem, root = _filesystem(parts.scheme, parts.netloc, parts.query)
    path = posixpath.join(root, unquote(parts.path).lstrip("/"))
    return filesystem, path.rstrip("/") or path[:1]


def _info(uri: str):
    """pyarrow's FileInfo of ``uri``; an EnhanceEdgeError naming it when the storage cannot be asked."""
    filesystem, path = resolve(uri)
    try:
        return filesystem.get_file_info(path)
    except OSError as exc:  # no credentials, no network, no such bucket
        raise EnhanceEdgeError(f"{uri}: cannot reach it ({_first_line(exc)})") from None


def _kind(where: Location) -> str:
    """"file", "folder" or "missing"."""
    if isinstance(where, Path):
        return "folder" if where.is_dir() else "file" if where.exists() else "missing"
    kind, kinds = _info(where).type, _pyarrow_fs().FileType
    return "folder" if kind == kinds.Directory else "missing" if kind == kinds.NotFound else "file"


def _list_folder(folder: str, recursive: bool, exclude: Location | None) -> list[tuple[InputFile, int]]:
    """The image files of a folder URI (by extension; hidden ones never), with their sizes in
    bytes, leaving out ``exclude`` (the output folder) where it lies inside."""
    filesystem, base = resolve(folder)
    pyarrow_fs = _pyarrow_fs()
    skipped = None
    if isinstance(exclude, str):
        exclude_filesystem, exclude_path = resolve(exclude)
        if exclude_filesystem.equals(filesystem) and exclude_path.startswith(f"{base}/"):
            skipped = f"{exclude_path}/"
    try:
        listing = filesystem.get_file_info(pyarrow_fs.FileSelector(base, recursive=recursive))
    except OSError as exc:
        raise EnhanceEdgeError(f"{folder}: cannot list it ({_first_line(exc)})") from None
    found = []
    for info in sorted(listing, key=lambda info: info.path):
        relative = info.path[len(base):].lstrip("/")
        if (info.type == pyarrow_fs.FileType.File and not any(part.startswith(".") for part in relative.split("/"))
                and pillow_format(posixpath.splitext(relative)[1].lower()) is not None
                and not (skipped and info.path.startswith(skipped))):
            found.append((InputFile(join(folder, relative), Path(relative), True), info.size))
    return found


def _inputs(where: Location, recursive: bool, output: Location | None) -> list[tuple[InputFile, int]]:
    """What one input contributes, as batch.expand_inputs lists it, with each URI file's size
    (0 for a local file, whose header is read instead, and for a URI that names nothing: its
    job fails with "no such file" as a missing path's does)."""
    if isinstance(where, Path):
        return [(item, 0) for item in expand_inputs([where], recursive,
                                                     exclude=output if isinstance(output, Path) else None)]
    info = _info(where)
    if info.type == _pyarrow_fs().FileType.Directory:
        return _list_folder(where, recursive, output)
    return [(InputFile(where, file_name(where), False), info.size or 0)]


def plan_jobs(inputs: list[Location], output: Location | None, *, scale: int, recursive: bool = False,
              suffix: str | None = None, output_format: str | None = None,
              output_size: OutputSize | None = None) -> tuple[list[Job], dict[str, int]]:
    """batch.plan_jobs where inputs or -o may be URIs (a Job's source and target are then
    Locations): the same names, sub-folders, suffix and problems, by the same planner
    (batch.output_suffix, batch.name_jobs). -o is
    always a folder here. Also each URI input's size in bytes. Listings take files by
    extension, without reading headers (a request per file), so an earlier run's outputs
    are left out by name only: -o outside the input folder, or beside the inputs."""
    kind = None if output is None else _kind(output)
    if kind == "file" or (kind == "missing" and format_for(file_name(output))):
        raise EnhanceEdgeError(f"-o {str(output)!r}: with URIs, -o names a folder, where each output keeps its "
                               f"input's name")
    suffix = output_suffix(suffix, output, scale, output_size or OutputSize())
    found = [entry for where in inputs for entry in _inputs(where, recursive, output)]
    sizes = {str(item.path): size for item, size in found if isinstance(item.path, str)}
    return name_jobs([item for item, _ in found], output, suffix, output_format, URI_FILES), sizes


def _key(where: Location) -> str:
    """What two locations that name the same file share: a path and a file:// URI of one file
    share its real path."""
    if isinstance(where, str):
        parts = urlsplit(where)
        if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
            return where
        where = Path(unquote(parts.path))
    return os.path.realpath(where)


def expand_lists(inputs: list[Location]) -> list[Location]:
    """``inputs`` with each @FILE replaced by the locations FILE lists, one a line (a path or a
    URI, relative paths from the working folder); blank lines and # comments are left out."""
    expanded: list[Location] = []
    for where in inputs:
        if not str(where).startswith(LIST_PREFIX):
            expanded.append(where)
            continue
        listing = location(str(where)[len(LIST_PREFIX):])
        try:
            data = _read_bytes(listing, MAX_LIST_BYTES)
            if len(data) > MAX_LIST_BYTES:
                raise ValueError(f"over {MAX_LIST_BYTES / 2**20:g} MiB, the most an input list may have")
            text = data.decode("utf-8-sig")
        except FileNotFoundError:
            raise EnhanceEdgeError(f"{where}: cannot read the input list (no such file)") from None
        except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            raise EnhanceEdgeError(f"{where}: cannot read the input list ({_first_line(exc)})") from None
        lines = [line.strip() for line in text.splitlines()]
        expanded += [location(line) for line in lines if line and not line.startswith("#")]
    return expanded


def existing_and_stale(targets: list[str]) -> tuple[set[str], list[str]]:
    """Which URI targets exist, and the temporaries that writes of them left when their writer
    was killed (untouched for STALE_PART_SECONDS), deleted: one listing per folder, not a
    request per file."""
    pyarrow_fs = _pyarrow_fs()
    names_by_folder: dict[str, dict[str, str]] = {}
    for target in targets:
        names_by_folder.setdefault(_parent(target), {})[file_name(target).name] = target
    existing, removed = set(), []
    for folder, names in names_by_folder.items():
        filesystem, path = resolve(folder)
        try:
            listing = filesystem.get_file_info(pyarrow_fs.FileSelector(path, allow_not_found=True))
        except OSError as exc:
            raise EnhanceEdgeError(f"{folder}: cannot list it ({_first_line(exc)})") from None
        for info in listing:
            if info.type != pyarrow_fs.FileType.File:
                continue
            if info.base_name in names:
                existing.add(names[info.base_name])
            elif target_name(info.base_name) in names and (
                    info.mtime is None or time.time() - info.mtime.timestamp() > STALE_PART_SECONDS):
                with contextlib.suppress(FileNotFoundError):  # another run's clean-up was first
                    filesystem.delete_file(info.path)
                    removed.append(join(folder, info.base_name))
    return existing, removed


def common_folder(locations: list[Location]) -> str | None:
    """The deepest folder URI that holds every one of ``locations``; None unless they are all
    URIs of one filesystem."""
    if not all(isinstance(where, str) for where in locations):
        return None
    parts = [urlsplit(where) for where in locations]
    if len({(part.scheme, part.netloc, part.query) for part in parts}) != 1:
        return None
    return _uri(parts[0], posixpath.commonpath([posixpath.dirname(part.path) or "/" for part in parts]))


def _exists(where: Location) -> bool:
    return where.exists() if isinstance(where, Path) else _kind(where) != "missing"


class NotRegularFile(OSError):
    """A local location that is a folder, named pipe, socket or device: nothing to read."""


def _read_bytes(where: Location, limit: int) -> bytes:
    """The first ``limit`` + 1 bytes of the file ``where`` (more than ``limit``: over it). A local
    one must be a regular file (NotRegularFile), checked on the descriptor opened without
    waiting: a check by name first could be raced by a swap. OSError as opening raises it."""
    if isinstance(where, str):
        filesystem, path = resolve(where)
        if filesystem.type_name != "local":
            with filesystem.open_input_stream(path) as stream:
                return stream.read(limit + 1)
        where = Path(path)
    fd = os.open(where, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        kind = next((kind for is_kind, kind in _NOT_REGULAR if is_kind(mode)), None)
        if kind is not None:
            raise NotRegularFile(f"is {kind}, not a regular file")
        if hasattr(os, "set_blocking"):  # O_NONBLOCK was for the open
            os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        return handle.read(limit + 1)


def _read(uri: str, max_pixels: int) -> NamedBytes:
    """The bytes of the file ``uri``, whose str() is the URI; ImageError with the plain reason,
    or when it is larger than an image of ``max_pixels`` pixels can be."""
    limit = max_pixels * BYTES_PER_PIXEL_AT_MOST + METADATA_BYTES
    try:
        data = _read_bytes(uri, limit)
    except FileNotFoundError:
        raise ImageError(f"{uri}: no such file") from None
    except PermissionError:
        raise ImageError(f"{uri}: cannot read (permission denied)") from None
    except NotRegularFile as exc:
        raise ImageError(f"{uri}: {exc}") from None
    except OSError as exc:
        raise ImageError(f"{uri}: cannot read ({_first_line(exc)})") from None
    if len(data) > limit:
        raise ImageError(f"{uri}: over {limit / 2**20:,.0f} MiB, more than an image within --max-pixels "
                         f"{max_pixels:,} can take ({BYTES_PER_PIXEL_AT_MOST} bytes a pixel, and metadata)")
    return NamedBytes(data, uri)


def write_atomically(where: Location, data: bytes) -> None:
    """``data`` becomes the file ``where`` whole, or nothing is written; its folder is made when
    missing. EnhanceEdgeError naming ``where`` when the storage refuses."""
    if isinstance(where, Path):
        try:
            write_file(where, data)
        except OSError as exc:
            raise EnhanceEdgeError(f"{where}: cannot write ({exc})") from None
        return
    filesystem, path = resolve(where)
    folder, name = posixpath.split(path)
    part = posixpath.join(folder, f".{name}.{secrets.token_hex(4)}{PART_SUFFIX}")
    try:
        try:
            stream = filesystem.open_output_stream(part)
        except FileNotFoundError:  # a local folder not made yet (an object store has none to make)
            filesystem.create_dir(folder, recursive=True)
            stream = filesystem.open_output_stream(part)
        with stream:
            stream.write(data)
        filesystem.move(part, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            filesystem.delete_file(part)
        if isinstance(exc, OSError):
            raise EnhanceEdgeError(f"{where}: cannot write ({_first_line(exc)})") from None
        raise


class _UriFiles:
    """batch.upscale_file's storage for a job with a URI at either end (batch.LOCAL_FILES's paths
    otherwise): the input read whole to at most what --max-pixels allows, the output encoded in
    memory and then written atomically (write_atomically)."""

    def exists(self, where: Location) -> bool:
        return _exists(where)

    def source(self, where: Location, max_pixels: int) -> Path | NamedBytes:
        return _read(where, max_pixels) if isinstance(where, str) else where

    def name(self, where: Location) -> Path:
        return file_name(where)

    def beside(self, where: Location, name: str) -> Location:
        return where.parent / name if isinstance(where, Path) else join(_parent(where), name)

    def inside(self, folder: Location, relative: Path) -> Location:
        return folder / relative if isinstance(folder, Path) else join(folder, relative.as_posix())

    def key(self, where: Location) -> str:
        return _key(where)

    @contextlib.contextmanager
    def output(self, where: Location):
        encoded = io.BytesIO()
        yield encoded
        write_atomically(where, encoded.getvalue())


URI_FILES: Storage = _UriFiles()


def storage_for(job: Job) -> Storage:
    """The storage of ``job``'s files: local paths at both ends, else URIs."""
    return LOCAL_FILES if isinstance(job.source, Path) and isinstance(job.target, Path) else URI_FILES
