"""The Cropped Extended Yale Face Database B, fetched and laid out as the commands read it.

The published archive (CroppedYale.zip) holds ``CroppedYale/yaleBNN/yaleBNN_P00A{az}E{el}.pgm``
(38 subjects, 168x192 grayscale), one "Ambient" image per subject (lights off) and a few
images its authors marked bad (``*.pgm.bad``). `enhance-edge data yale` keeps the lit faces
only, converted losslessly to PNG: ``DIR/yaleBNN/yaleBNN_P00A{az}E{el}.png``, the layout of
``../shared/data/yale_b_cropped`` that PROTOCOL.md's split and every figure use.

Free for research use; cite Georghiades, Belhumeur & Kriegman (TPAMI 2001) and Lee, Ho &
Kriegman (TPAMI 2005) (README.md, "Data").
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image

from ..errors import DataError

YALE_URL = "http://vision.ucsd.edu/extyaleb/CroppedYaleBZip/CroppedYale.zip"
# No digest of CroppedYale.zip is published (the database's pages give none, and none was found
# elsewhere): unknown until first verified, so the check takes the one the user passes (--sha256).
YALE_SHA256: str | None = None
# A lit face; the Ambient images (yaleBNN_P00_Ambient.pgm) and the *.pgm.bad ones do not match.
FACE_NAME = re.compile(r"(yaleB\d{2})_P00A[+-]\d{3}E[+-]\d{2}\.pgm")
_CHUNK = 1 << 20
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
                if member.is_dir():
                    continue
                name = PurePosixPath(member.filename).name
                match = FACE_NAME.fullmatch(name)
                if match is None:
                    left_out += 1
                    continue
                try:
                    with Image.open(io.BytesIO(bundle.read(member))) as image:
                        image.load()
                        if image.mode != "L":  # the published faces are 8-bit gray
                            raise DataError(f"{archive}: {member.filename} is a {image.mode} image, not 8-bit gray")
                        (folder / match[1]).mkdir(exist_ok=True)
                        image.save(folder / match[1] / f"{name[:-len('.pgm')]}.png")  # PNG: lossless
                except (OSError, SyntaxError) as exc:
                    raise DataError(f"{archive}: {member.filename} is not a readable PGM image ({exc})") from None
                faces += 1
                subjects.add(match[1])
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise DataError(f"{archive}: not a readable zip archive ({exc})") from None
    if not faces:
        raise DataError(f"{archive}: holds no Yale face images (yaleBNN/yaleBNN_P00A...E....pgm); is it "
                        f"CroppedYale.zip?")
    return faces, len(subjects), left_out


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
