"""`enhance-edge data yale`: a small archive in CroppedYale.zip's layout, built here; never the network."""

import hashlib
import io
import re
import tracemalloc
import urllib.error
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from enhance_edge.apps.cli import main
from enhance_edge.eval.dataset import image_files, split_files
from enhance_edge.errors import DataError
from enhance_edge.eval.yale import MAX_MEMBER_BYTES, YALE_URL, fetch_yale

FACES = ["yaleB01/yaleB01_P00A+000E+00.pgm", "yaleB01/yaleB01_P00A-005E-10.pgm",
         "yaleB02/yaleB02_P00A+000E+00.pgm", "yaleB34/yaleB34_P00A+110E+65.pgm"]
OTHERS = ["yaleB01/yaleB01_P00_Ambient.pgm", "yaleB02/yaleB02_P00A+050E-40.pgm.bad", "yaleB02/WS_FTP.LOG"]


def pgm(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (12, 10), dtype=np.uint8)  # 10 wide, 12 high
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PPM")  # a gray image is written as PGM (P5)
    assert buffer.getvalue().startswith(b"P5")
    return buffer.getvalue()


@pytest.fixture
def archive(tmp_path):
    """CroppedYale.zip in miniature: lit faces, an Ambient image, a .bad one and a log, in CroppedYale/."""
    path = tmp_path / "CroppedYale.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("CroppedYale/", b"")
        for seed, name in enumerate(FACES + OTHERS):
            bundle.writestr(f"CroppedYale/{name}", pgm(seed) if ".pgm" in name else b"log")
    return path


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(*args):
    return CliRunner().invoke(main, ["data", "yale", *map(str, args)])


def test_a_local_archive_becomes_the_layout_the_commands_read(tmp_path, archive):
    to = tmp_path / "data" / "yale_b_cropped"
    result = run("--to", to, "--from", archive, "--sha256", sha256(archive).upper())
    assert result.exit_code == 0, result.output
    assert result.stdout == (f"wrote 4 faces of 3 subjects to {to} (PNG, converted losslessly from PGM); left out "
                             f"3 other archive files (Ambient images, those marked .bad)\n")
    assert f"sha256 {sha256(archive)}: as expected" in result.stderr
    written = sorted(str(path.relative_to(to)) for path in to.rglob("*") if path.is_file())
    assert written == sorted(name.replace(".pgm", ".png") for name in FACES)
    for seed, name in enumerate(FACES):
        with Image.open(to / name.replace(".pgm", ".png")) as image, Image.open(io.BytesIO(pgm(seed))) as original:
            assert image.format == "PNG" and image.mode == "L"
            assert np.array_equal(np.asarray(image), np.asarray(original))  # lossless
    files = image_files(to)
    assert len(files) == 4 and split_files(to, files, seed=0)["test"] == [to / FACES[3].replace(".pgm", ".png")]
    assert [path.name for path in tmp_path.joinpath("data").iterdir()] == ["yale_b_cropped"]  # no scratch left


def test_without_a_digest_it_is_printed_not_checked(tmp_path, archive):
    result = run("--to", tmp_path / "faces", "--from", archive)
    assert result.exit_code == 0, result.output
    assert f"sha256 {sha256(archive)}: not checked (no digest is published" in result.stderr


def test_a_different_archive_is_refused_and_nothing_is_written(tmp_path, archive):
    to = tmp_path / "faces"
    result = run("--to", to, "--from", archive, "--sha256", "0" * 64)
    assert result.exit_code == 1
    assert result.stderr == (f"error: {archive}: sha256 is {sha256(archive)}, expected {'0' * 64}: a different or "
                             f"damaged archive; nothing was written\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["CroppedYale.zip"]


@pytest.mark.parametrize("digest", ["abc", "g" * 64])
def test_a_malformed_digest_is_one_line(tmp_path, archive, digest):
    result = run("--to", tmp_path / "faces", "--from", archive, "--sha256", digest)
    assert (result.exit_code, result.stderr) == (1, f"error: --sha256 must be 64 hexadecimal digits, got "
                                                    f"{digest!r}\n")


def test_a_folder_that_holds_files_is_never_written_into(tmp_path, archive):
    to = tmp_path / "faces"
    to.mkdir()
    (to / "mine.txt").write_text("keep")
    result = run("--to", to, "--from", archive)
    assert result.exit_code == 1 and "already exists and is not an empty folder" in result.stderr
    assert [path.name for path in to.iterdir()] == ["mine.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("--to", empty, "--from", archive).exit_code == 0 and (empty / "yaleB01").is_dir()


def test_an_archive_that_is_not_the_yale_one_says_so(tmp_path):
    other = tmp_path / "photos.zip"
    with zipfile.ZipFile(other, "w") as bundle:
        bundle.writestr("holiday/beach.jpg", b"jpeg")
    assert "holds no Yale face images" in run("--to", tmp_path / "a", "--from", other).stderr
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not really")
    assert f"error: {broken}: not a readable zip archive" in run("--to", tmp_path / "b", "--from", broken).stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()



def face_zip(path, data, *, flag=0, method=None, name=f"CroppedYale/{FACES[0]}"):
    """A one-face archive holding ``data``, its entry's flag bits or compression method patched in
    (zipfile writes neither encrypted nor deflate64 entries)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(name, data)
    raw = bytearray(buffer.getvalue())
    for signature, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        at = raw.index(signature)
        raw[at + flag_at] |= flag
        if method is not None:
            raw[at + method_at:at + method_at + 2] = method.to_bytes(2, "little")
    path.write_bytes(raw)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda path: face_zip(path, b"P5\n20000 20000\n255\n" + b"\0" * 100),
     "declares 20000x20000 pixels, more than its 119 bytes hold"),
    (lambda path: face_zip(path, pgm(0), flag=1),
     "is encrypted; the published archive is not: give an unencrypted copy"),
    (lambda path: face_zip(path, pgm(0), method=9),
     "uses zip compression method 9, which Python's zipfile cannot read (it reads stored, deflate, bzip2, lzma); "
     "repack the archive"),
    (lambda path: face_zip(path, b"P5\n168 192\n255\n" + b"\0" * (MAX_MEMBER_BYTES + 1)),
     f"is over {MAX_MEMBER_BYTES:,} bytes uncompressed, the most a face is read to (a published face is 32 KiB): "
     f"its entry declares {MAX_MEMBER_BYTES + 16:,}"),
    (lambda path: face_zip(path, b"P6\n2 2\n255\n" + b"\0" * 12), "is a RGB image, not 8-bit gray"),
])
def test_a_hostile_member_is_one_line_naming_it_and_nothing_is_written(tmp_path, make, message):
    archive = make(tmp_path / "CroppedYale.zip")
    result = run("--to", tmp_path / "faces", "--from", archive)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.splitlines()[-1] == f"error: {archive}: CroppedYale/{FACES[0]} {message}"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["CroppedYale.zip"]


@pytest.mark.parametrize("declared", [None, 32 << 10])
def test_a_zip_bomb_is_refused_in_bounded_memory(tmp_path, declared):
    """64 MiB of zeros deflate to 64 KiB: refused from the size its entry declares, or, where the entry
    understates it, cut off there (zipfile reads no further than the entry says) and found corrupt."""
    archive = tmp_path / "bomb.zip"
    name = f"CroppedYale/{FACES[0]}"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle, bundle.open(name, "w") as member:
        for _ in range(64):
            member.write(bytes(1 << 20))
    if declared is not None:
        raw = bytearray(archive.read_bytes())
        for signature, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
            at = raw.index(signature) + size_at
            raw[at:at + 4] = declared.to_bytes(4, "little")
        archive.write_bytes(raw)
    cause = (f"is over {MAX_MEMBER_BYTES:,} bytes uncompressed, the most a face is read to (a published face is "
             f"32 KiB): its entry declares {64 << 20:,}" if declared is None else "cannot be read from the archive")
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=f"^{re.escape(f'{archive}: {name} {cause}')}"):
            fetch_yale(tmp_path / "faces", archive)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * MAX_MEMBER_BYTES


def test_it_downloads_the_published_archive(tmp_path, archive, monkeypatch):
    asked = []

    def served(url, timeout):
        asked.append(url)
        return io.BytesIO(archive.read_bytes())

    monkeypatch.setattr("urllib.request.urlopen", served)
    lines = []
    done = fetch_yale(tmp_path / "faces", sha256=sha256(archive), report=lines.append)
    assert asked == [YALE_URL] == ["http://vision.ucsd.edu/extyaleb/CroppedYaleBZip/CroppedYale.zip"]
    assert (done.faces, done.subjects, done.left_out, done.checked) == (4, 3, 3, True)
    assert lines[0] == f"downloading {YALE_URL}" and lines[1].startswith("downloaded 0.0 MiB")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["CroppedYale.zip", "faces"]  # the download is gone


def test_a_failed_download_says_how_to_get_the_archive_another_way(tmp_path, monkeypatch):
    def unreachable(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr("urllib.request.urlopen", unreachable)
    with pytest.raises(DataError, match=f"cannot download {YALE_URL} \\(Name or service not known\\); download it "
                                        f"another way and give it with --from ARCHIVE"):
        fetch_yale(tmp_path / "faces")
    assert list(tmp_path.iterdir()) == []
