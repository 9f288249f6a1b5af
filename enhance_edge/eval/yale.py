"""The Cropped Extended Yale Face Database B, fetched and laid out as the commands read it.

The published archive (CroppedYale.zip) holds ``CroppedYale/yaleBNN/yaleBNN_P00A{az}E{el}.pgm``
(38 subjects, 168x192 grayscale), one "Ambient" image per subject (lights off) and a few
images its authors marked bad (``*.pgm.bad``). `enhance-edge data yale` keeps the lit faces
only, converted losslessly to PNG: ``DIR/yaleBNN/yaleBNN_P00A{az}E{el}.png``, the layout of
the folder that docs/evaluation.md's split and every figure use.

Free for research use; cite Georghiades, Belhumeur & Kriegman (TPAMI 2001) and Lee, Ho &
Kriegman (TPAMI 2005) (docs/evaluation.md, "The faces").
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import lzma
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import PpmImagePlugin

from ..errors import DataError

YALE_URL = "http://vision.ucsd.edu/extyaleb/CroppedYaleBZip/CroppedYale.zip"
# No digest of CroppedYale.zip is published (the database's pages give none, and none was found
# elsewhere): unknown until first verified, so the check takes the one the user passes (--sha256).
YALE_SHA256: str | None = None
# A lit face; the Ambient images (yaleBNN_P00_Ambient.pgm) and the *.pgm.bad ones do not match.
FACE_NAME = re.compile(r"(yaleB\d{2})_P00A[+-]\d{3}E[+-]\d{2}\.pgm")
_CHUNK = 1 << 20
# A face member is read to this many bytes at most: thirty times a published face (168x192, 32 KiB),
# and a bound on the memory one member can take whatever its entry declares.
MAX_MEMBER_BYTES = 1 << 20
_ENCRYPTED = 0x1  # a zip entry's general-purpose flag bit
_READABLE_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
                     zipfile.ZIP_LZMA: "lzma"}
_DOWNLOAD_TIMEOUT_S = 60


@dataclass(frozen=True)
class YaleData:
    """What fetch_yale did."""

    folder: Path
    faces: int
    subjects: int
    left_out: int  # archive members that are not lit faces: Ambient images, *.bad, folders, logs
    sha256: str  # of the archive
    checked: bool  # the digest was compared with an expected one (and matched)


def _hex_digest(text: str) -> str:
    digest = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise DataError(f"--sha256 must be 64 hexadecimal digits, got {text!r}")
    return digest


def download(url: str, target: Path, report: Callable[[str], None]) -> str:
    """Stream ``url`` into ``target``; its sha256. DataError, saying how to get it by hand, on failure."""
    report(f"downloading {url}")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response, open(target, "wb") as out:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataError(f"cannot download {url} ({reason}); download it another way and give it with "
                        f"--from ARCHIVE") from None
    report(f"downloaded {target.stat().st_size / 2**20:.1f} MiB")
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def unpack(archive: Path, folder: Path) -> tuple[int, int, int]:
    """The lit faces of ``archive`` as PNG in ``folder``/yaleBNN/; (faces, subjects, members left out).
    Members are written under names built from their base name only, never from their path."""
    faces, subjects, left_out = 0, set(), 0
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.infolist():
                match = None if member.is_dir() else FACE_NAME.fullmatch(PurePosixPath(member.filename).name)
                if match is None:
                    left_out += not member.is_dir()
                    continue
                _write_face(archive, member.filename, _read_member(archive, bundle, member),
                            folder / match[1] / f"{match[0][:-len('.pgm')]}.png")
                faces += 1
                subjects.add(match[1])
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise DataError(f"{archive}: not a readable zip archive ({exc})") from None
    if not faces:
        raise DataError(f"{archive}: holds no Yale face images (yaleBNN/yaleBNN_P00A...E....pgm); is it "
                        f"CroppedYale.zip?")
    return faces, len(subjects), left_out


def _read_member(archive: Path, bundle: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
    """A face member's bytes, read no further than MAX_MEMBER_BYTES whatever its entry declares (a
    small deflated member can expand to gigabytes); DataError naming it if it is larger, encrypted,
    compressed in a way zipfile cannot read, or corrupt."""
    where = f"{archive}: {member.filename}"
    if member.flag_bits & _ENCRYPTED:
        raise DataError(f"{where} is encrypted; the published archive is not: give an unencrypted copy")
    if member.compress_type not in _READABLE_METHODS:
        raise DataError(f"{where} uses zip compression method {member.compress_type}, which Python's zipfile "
                        f"cannot read (it reads {', '.join(_READABLE_METHODS.values())}); repack the archive")
    too_large = (f"{where} is over {MAX_MEMBER_BYTES:,} bytes uncompressed, the most a face is read to "
                 f"(a published face is 32 KiB)")
    if member.file_size > MAX_MEMBER_BYTES:
        raise DataError(f"{too_large}: its entry declares {member.file_size:,}")
    try:
        with bundle.open(member) as stream:
            data = stream.read(MAX_MEMBER_BYTES + 1)
    except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, NotImplementedError) as exc:
        raise DataError(f"{where} cannot be read from the archive ({exc})") from None
    if len(data) > MAX_MEMBER_BYTES:
        raise DataError(too_large)
    return data


def _write_face(archive: Path, name: str, data: bytes, target: Path) -> None:
    """Convert one face member's PGM bytes to a PNG at ``target``; DataError naming it if they are
    not an 8-bit gray PGM whose declared size its bytes can hold."""
    where = f"{archive}: {name}"
    try:
        # The PGM plugin itself, not Image.open: a header declaring a huge image is then this function's
        # refusal (below) rather than Pillow's bomb error or a warning, whatever its process-wide limit.
        with PpmImagePlugin.PpmImageFile(io.BytesIO(data)) as image:
            if image.mode != "L":  # the published faces are 8-bit gray
                raise DataError(f"{where} is a {image.mode} image, not 8-bit gray")
            if image.width * image.height > len(data):  # a gray PGM's pixels take a byte each at least
                raise DataError(f"{where} declares {image.width}x{image.height} pixels, more than its "
                                f"{len(data):,} bytes hold")
            image.load()
            target.parent.mkdir(exist_ok=True)
            image.save(target)  # PNG: lossless
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{where} is not a readable PGM image ({exc})") from None


def fetch_yale(to: Path, archive: Path | None = None, sha256: str | None = None, url: str = YALE_URL,
               report: Callable[[str], None] = lambda line: None) -> YaleData:
    """Download (or, with ``archive``, take a local copy of) CroppedYale.zip, check its sha256
    (``sha256``, else YALE_SHA256 where known), and unpack its lit faces to ``to`` as PNG. ``to``
    must be new or empty; it appears only when complete (unpacked beside it, then renamed)."""
    to = Path(to)
    expected = _hex_digest(sha256) if sha256 is not None else YALE_SHA256
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise DataError(f"{to} already exists and is not an empty folder; choose a new one")
    if archive is not None and not Path(archive).is_file():
        raise DataError(f"--from {str(archive)!r} is not a file")
    to.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{to.name}.", suffix=".part", dir=to.parent) as scratch:
        if archive is None:
            archive = Path(scratch) / "CroppedYale.zip"
            actual = download(url, archive, report)
        else:
            archive = Path(archive)
            actual = _file_sha256(archive)
        if expected is not None and actual != expected:
            raise DataError(f"{archive}: sha256 is {actual}, expected {expected}: a different or damaged archive; "
                            f"nothing was written")
        report(f"sha256 {actual}: " + ("as expected" if expected is not None else
                                       "not checked (no digest is published; record it, and give it with --sha256 "
                                       "to check a later copy)"))
        unpacked = Path(scratch) / "faces"
        unpacked.mkdir()
        faces, subjects, left_out = unpack(archive, unpacked)
        with contextlib.suppress(FileNotFoundError):
            to.rmdir()  # an empty folder given as the target
        shutil.move(str(unpacked), to)
    return YaleData(to, faces, subjects, left_out, actual, expected is not None)
