"""Reading and writing files: orientation, modes, metadata, provenance, and every way a file is bad."""

import io
import os
import signal
import subprocess
import sys
import threading
import warnings
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageFile

from enhance_edge import __version__
from enhance_edge.errors import ImageError
from enhance_edge.io import imageio
from enhance_edge.io.imageio import (DEFAULT_QUALITY, WORKING_MODES, SourceInfo, format_for, made_by_enhance_edge,
                                     output_format_for, probe_pixels, provenance, read_image, save_options,
                                     working_image, write_image)

TAGS = provenance("x2", "tiny.onnx (sha256 0123456789ab)")
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def gradient(width=24, height=16, mode="RGB") -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], -1)
    return Image.fromarray(rgb.astype(np.uint8)).convert(mode)


def encoded(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def written(image, image_format, source=SourceInfo(), quality=DEFAULT_QUALITY) -> Image.Image:
    buffer = io.BytesIO()
    write_image(image, buffer, image_format, source, TAGS, quality)
    buffer.seek(0)
    return Image.open(buffer)


# --- reading ---------------------------------------------------------------------------------

def test_exif_orientation_is_applied_and_removed(tmp_path):
    upright = gradient(30, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view": the camera stored the pixels turned left
    exif[0x010F] = "Camera maker"
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    path = write(tmp_path, "photo.png", encoded(stored, "PNG", exif=exif.tobytes()))
    image, info = read_image(path)
    assert image.size == (30, 20)
    assert np.array_equal(np.asarray(image), np.asarray(upright))
    assert 0x0112 not in info.exif and info.exif[0x010F] == "Camera maker"


@pytest.mark.parametrize("mode, transparency, expected", [
    ("1", None, "L"), ("L", None, "L"), ("L", 0, "LA"), ("P", None, "RGB"), ("P", 0, "RGBA"),
    ("PA", None, "RGBA"), ("RGB", None, "RGB"), ("RGB", (0, 0, 0), "RGBA"), ("CMYK", None, "RGB"),
    ("YCbCr", None, "RGB"), ("LAB", None, "RGB"), ("HSV", None, "RGB"), ("I", None, "I;16"),
    ("I;16", None, "I;16"), ("F", None, "I;16"), ("LA", None, "LA"), ("RGBA", None, "RGBA"),
])
def test_every_mode_becomes_a_working_mode(mode, transparency, expected):
    image = gradient().convert(mode) if mode not in ("I;16", "F") else None
    if mode == "I;16":
        image = Image.fromarray(np.arange(24 * 16, dtype=np.uint16).reshape(16, 24) * 150)
    elif mode == "F":
        image = Image.fromarray(np.linspace(0, 1, 24 * 16, dtype=np.float32).reshape(16, 24))
    if transparency is not None:
        image.info["transparency"] = transparency
    converted = working_image(image)
    assert converted.mode == expected and converted.size == (24, 16)


def test_float_images_in_unit_range_keep_their_scale():
    image = Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32))
    assert np.asarray(working_image(image)).tolist() == [[0, 32768, 65535]]


def test_cmyk_without_a_profile_uses_the_plain_formula_and_claims_no_profile(tmp_path):
    path = write(tmp_path, "print.tif", encoded(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "TIFF"))
    image, info = read_image(path)
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 0, 0) and info.icc_profile is None


def test_cmyk_with_a_profile_is_converted_through_it_to_srgb(monkeypatch):
    # No CMYK profile ships with Pillow or the test machine: check the wiring with a stand-in transform.
    calls = []

    def transform(image, source_profile, target_profile, outputMode):
        calls.append((source_profile.tobytes() == SRGB, target_profile.profile.profile_description, outputMode))
        return Image.new("RGB", image.size, (1, 2, 3))

    monkeypatch.setattr(ImageCms, "profileToProfile", transform)
    cmyk = Image.new("CMYK", (4, 4))
    cmyk.info["icc_profile"] = SRGB  # stands in for the file's CMYK profile
    converted = working_image(cmyk)
    assert calls == [(True, "sRGB built-in", "RGB")]
    assert converted.getpixel((0, 0)) == (1, 2, 3) and converted.info["icc_profile"] != b""


def test_a_broken_cmyk_profile_falls_back_to_the_plain_formula():
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))
    cmyk.info["icc_profile"] = b"not a profile"
    converted = working_image(cmyk)
    assert converted.getpixel((0, 0)) == (255, 0, 0) and "icc_profile" not in converted.info


def test_gray_palettes_stay_gray():
    gray = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).convert("P")
    assert working_image(gray).mode == "L"
    assert working_image(gradient().convert("P")).mode == "RGB"


def test_sixteen_bit_gray_keeps_its_precision(tmp_path):
    pixels = (np.arange(64 * 32, dtype=np.uint16).reshape(32, 64) * 31) + 7
    path = write(tmp_path, "depth.png", encoded(Image.fromarray(pixels), "PNG"))
    image, _ = read_image(path)
    assert image.mode == "I;16" and np.array_equal(np.asarray(image), pixels)


def test_metadata_is_collected(tmp_path):
    path = write(tmp_path, "a.jpg", encoded(gradient(), "JPEG", dpi=(300, 300), icc_profile=SRGB))
    _, info = read_image(path)
    assert (info.format, info.dpi, info.icc_profile) == ("JPEG", (300, 300), SRGB)


def test_aspect_only_density_is_not_a_resolution(tmp_path):
    path = write(tmp_path, "a.jpg", encoded(gradient(), "JPEG", dpi=(1, 1)))
    assert read_image(path)[1].dpi is None


@pytest.mark.parametrize("lossless", [True, False])
def test_lossless_webp_is_recognised(tmp_path, lossless):
    path = write(tmp_path, "a.webp", encoded(gradient(mode="RGBA"), "WEBP", lossless=lossless))
    assert read_image(path)[1].lossless is lossless


def test_file_objects_can_be_read_and_name_themselves_in_errors():
    class Named(io.BytesIO):
        def __str__(self):
            return "upload.png"

    image, info = read_image(Named(encoded(gradient(), "PNG")))
    assert image.size == (24, 16) and info.format == "PNG"
    with pytest.raises(ImageError, match=r"^upload.png: empty file$"):
        read_image(Named(b""))


@pytest.mark.parametrize("make, message", [
    (lambda d: write(d, "empty.png", b""), "empty file"),
    (lambda d: write(d, "notes.png", b"shopping list: milk, eggs\n"), "not an image"),
    (lambda d: write(d, "cut.jpg", encoded(gradient(64, 64), "JPEG")[:300]), "corrupt or truncated image"),
    (lambda d: write(d, "cut.png", encoded(gradient(64, 64), "PNG")[:-40]), "corrupt or truncated image"),
    (lambda d: d / "absent.png", "no such file"),
    (lambda d: (d / "folder.png").mkdir() or d / "folder.png", "is a folder"),
])
def test_bad_files_are_one_clear_image_error(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(ImageError, match=f"^{path}: {message}") as caught:
        read_image(path)
    assert "\n" not in str(caught.value)


def test_a_broken_link_is_named(tmp_path):
    link = tmp_path / "gone.png"
    link.symlink_to(tmp_path / "deleted.png")
    with pytest.raises(ImageError, match="gone.png: broken symbolic link"):
        read_image(link)


def finishes_within(seconds, function, *args):
    """function(*args)'s result or exception; fails the test if it has not returned in time (a hang)."""
    outcome = {}

    def call():
        try:
            outcome["result"] = function(*args)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{function.__name__} still running after {seconds} s"
    return outcome


def test_a_named_pipe_is_refused_without_being_waited_on(tmp_path):
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)  # opened plainly, it would wait for a writer for ever
    outcome = finishes_within(10, read_image, pipe)
    assert isinstance(outcome["error"], ImageError)
    assert str(outcome["error"]) == f"{pipe}: is a named pipe, not a regular file"
    assert finishes_within(10, probe_pixels, pipe)["result"] == 0
    assert finishes_within(10, made_by_enhance_edge, pipe)["result"] is False


def test_a_symbolic_link_loop_is_named(tmp_path):
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    with pytest.raises(ImageError, match=f"^{tmp_path / 'a.png'}: symbolic link loop$"):
        read_image(tmp_path / "a.png")


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP", "TIFF", "GIF"])
def test_our_outputs_are_recognised_by_their_tag(tmp_path, image_format):
    buffer = io.BytesIO()
    write_image(gradient(), buffer, image_format, SourceInfo(), TAGS)
    tagged = write(tmp_path, "tagged", buffer.getvalue())
    plain = write(tmp_path, "plain", encoded(gradient(), image_format))
    assert made_by_enhance_edge(tagged) and not made_by_enhance_edge(plain)


def test_unreadable_files_are_reported(tmp_path, monkeypatch):
    path = write(tmp_path, "secret.png", encoded(gradient(), "PNG"))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)  # root ignores chmod, so refuse at the open call
    with pytest.raises(ImageError, match="secret.png: cannot read \\(permission denied\\)"):
        read_image(path)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    Image.new("1", (12000, 10000)).save(path)  # 120 megapixels in a few kilobytes
    return path


def test_decompression_bombs_are_refused_before_decoding(tmp_path, bomb):
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ImageError, match=r"12000x10000 is 120 megapixels, over the limit of 64 megapixels"
                                         r".*--max-pixels"):
        read_image(bomb)
    with pytest.raises(ImageError, match="200x100 is 20,000 pixels, over the limit of 10,000 pixels"):
        read_image(write(tmp_path, "small.png", encoded(gradient(200, 100), "PNG")), max_pixels=10_000)
    with pytest.raises(ImageError, match="12000x10000 is 120 megapixels, over the limit of 1.25 megapixels"):
        read_image(bomb, max_pixels=1_250_000)


def test_raising_the_limit_lets_big_images_through(tmp_path):
    path = tmp_path / "big.png"
    Image.new("L", (200, 100)).save(path)
    assert read_image(path, max_pixels=20_000)[0].size == (200, 100)


def test_pillows_own_bomb_limit_is_left_as_it_is_and_its_refusal_is_an_image_error(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # as an application may set it, for every thread
    during = []
    load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: during.append(Image.MAX_IMAGE_PIXELS) or load(image))
    # Over Pillow's limit (it warns) but under twice it (it refuses): our own limit decides, quietly.
    path = write(tmp_path, "a.png", encoded(gradient(12, 12), "PNG"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image(path)[0].size == (12, 12)
    assert probe_pixels(path) == 144
    assert during and set(during) == {100}  # what every other thread saw meanwhile
    # Over twice it Pillow refuses to open the file: our limit's message, or Pillow's where ours is higher.
    big = write(tmp_path, "big.png", encoded(gradient(30, 30), "PNG"))
    with pytest.raises(ImageError, match=r"big\.png: 30x30 is 900 pixels, over the limit of 150 pixels that guards"):
        read_image(big, max_pixels=150)
    with pytest.raises(ImageError, match=r"big\.png: 30x30 is 900 pixels, over 200 pixels, the most Pillow decodes "
                                         r"\(twice PIL\.Image\.MAX_IMAGE_PIXELS"):
        read_image(big, max_pixels=10_000)
    assert Image.MAX_IMAGE_PIXELS == 100


def test_animations_are_refused(tmp_path):
    frames = [gradient(), gradient().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError, match="has 2 frames"):
        read_image(path)


def test_probe_reads_only_the_header(tmp_path, bomb):
    assert probe_pixels(bomb) == 120_000_000
    assert probe_pixels(write(tmp_path, "x.png", b"nope")) == 0


# --- writing ---------------------------------------------------------------------------------

def test_provenance_names_tool_version_and_model():
    software, description = TAGS
    assert software == f"enhance-edge {__version__}"
    assert f"Upscaled x2 by enhance-edge {__version__} with model tiny.onnx (sha256 0123456789ab)" in description
    assert "not recorded by a camera" in description


@pytest.mark.parametrize("image_format", ["JPEG", "WEBP"])
def test_jpeg_and_webp_carry_provenance_in_exif(image_format):
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    source = SourceInfo(exif=exif, icc_profile=SRGB, dpi=(300, 300))
    result = written(gradient(), image_format, source)
    tags = result.getexif()
    assert (tags[0x0131], tags[0x010E]) == TAGS and tags[0x010F] == "Camera maker"
    assert result.info["icc_profile"] == SRGB
    if image_format == "JPEG":
        assert result.info["dpi"] == (300, 300)


def test_png_carries_provenance_in_text_chunks_and_keeps_metadata():
    result = written(gradient(), "PNG", SourceInfo(icc_profile=SRGB, dpi=(150, 150)))
    assert (result.info["Software"], result.info["Description"]) == TAGS
    assert result.info["icc_profile"] == SRGB and [round(v) for v in result.info["dpi"]] == [150, 150]
    assert result.getexif()[0x0131] == TAGS[0]


def test_tiff_carries_provenance_in_its_tags():
    result = written(gradient(), "TIFF", SourceInfo(dpi=(300, 300)))
    assert (result.tag_v2[305], result.tag_v2[270]) == TAGS and result.info["compression"] == "tiff_lzw"


def test_exif_pixel_size_is_updated():
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA002] = 12
    exif.get_ifd(0x8769)[0xA003] = 8
    result = written(gradient(24, 16), "JPEG", SourceInfo(exif=exif))
    assert result.getexif().get_ifd(0x8769)[0xA002] == 24


def test_oversized_camera_exif_falls_back_to_ours_alone():
    exif = Image.Exif()
    exif[0x927C] = b"x" * 70_000  # a maker note too big for a JPEG APP1 segment
    result = written(gradient(), "JPEG", SourceInfo(exif=exif))
    assert result.getexif()[0x0131] == TAGS[0] and 0x927C not in result.getexif()


def test_sixteen_bit_survives_png_and_tiff_and_is_scaled_for_jpeg():
    pixels = np.array([[0, 257 * 100, 65535]], np.uint16)
    image = Image.fromarray(pixels)
    for image_format in ("PNG", "TIFF"):
        assert np.array_equal(np.asarray(written(image, image_format)), pixels)
    jpeg = written(image, "JPEG")
    assert jpeg.mode == "L" and abs(int(np.asarray(jpeg)[0, 1]) - 100) <= 2


@pytest.mark.parametrize("image_format", ["JPEG", "BMP"])  # BMP readers ignore a 32-bit BI_RGB's alpha
def test_alpha_is_flattened_on_white_where_the_format_has_none(image_format):
    rgba = written(Image.new("RGBA", (16, 16), (0, 0, 0, 0)), image_format)
    assert rgba.mode == "RGB" and np.asarray(rgba).min() >= 250
    gray = written(Image.new("LA", (16, 16), (0, 0)), image_format)
    assert gray.mode == "L" and np.asarray(gray).min() >= 250


def test_gray_alpha_becomes_rgba_for_webp():
    assert written(Image.new("LA", (16, 16), (80, 128)), "WEBP").mode == "RGBA"


def test_lossless_webp_stays_lossless():
    image = gradient()
    result = written(image, "WEBP", SourceInfo(format="WEBP", lossless=True))
    assert np.array_equal(np.asarray(result), np.asarray(image))


def test_quality_controls_jpeg_size():
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    sizes = []
    for quality in (30, 95):
        buffer = io.BytesIO()
        write_image(noisy, buffer, "JPEG", SourceInfo(), TAGS, quality)
        sizes.append(len(buffer.getvalue()))
    assert sizes[0] < sizes[1]
    with pytest.raises(ImageError, match="quality must be between 1 and 100, got 0"):
        write_image(noisy, io.BytesIO(), "JPEG", SourceInfo(), TAGS, 0)


def test_png_is_written_at_zlibs_fast_level():
    buffer = io.BytesIO()
    write_image(gradient(64, 64), buffer, "PNG", SourceInfo(), TAGS)
    data = buffer.getvalue()
    idat = data.index(b"IDAT") + 4
    # The zlib header's FLEVEL bits (top two of its second byte) say which level wrote it: 0 = fastest.
    assert data[idat] == 0x78 and data[idat + 1] >> 6 == 0


@pytest.mark.parametrize("channels", [1, 2, 3, 4])  # L, LA, RGB, RGBA
def test_png_has_pillows_own_pixels_and_chunks_and_the_same_bytes_on_any_number_of_threads(channels):
    # 1000x1100 noisy pixels: 1.1-4.4 MB of rows, deflated in 2 to 5 pieces joined into one stream
    pixels = np.random.default_rng(channels).integers(0, 256, (1100, 1000, channels), dtype=np.uint8)
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    source = SourceInfo(icc_profile=SRGB, dpi=(150, 150), exif=exif)
    ours, on_three_threads, pillows = io.BytesIO(), io.BytesIO(), io.BytesIO()
    write_image(image, ours, "PNG", source, TAGS, threads=1)
    write_image(image, on_three_threads, "PNG", source, TAGS, threads=3)
    assert on_three_threads.getvalue() == ours.getvalue()
    image.save(pillows, "PNG", **save_options("PNG", source, image.size, TAGS, DEFAULT_QUALITY))
    ours_read, pillows_read = (Image.open(io.BytesIO(buffer.getvalue())) for buffer in (ours, pillows))
    assert ours_read.mode == image.mode and np.array_equal(np.asarray(ours_read), np.asarray(image))
    assert ours_read.info == pillows_read.info and ours_read.getexif()[0x010F] == "Camera maker"


def png_chunks(data: bytes) -> list[tuple[bytes, int]]:
    """(type, length) of each chunk of a PNG file, each chunk's CRC checked."""
    chunks, at = [], len(b"\x89PNG\r\n\x1a\n")
    while at < len(data):
        length, kind = int.from_bytes(data[at:at + 4], "big"), data[at + 4:at + 8]
        body = data[at + 8:at + 8 + length]
        assert int.from_bytes(data[at + 8 + length:at + 12 + length], "big") == zlib.crc32(body, zlib.crc32(kind))
        chunks.append((kind, length))
        at += 12 + length
    return chunks


def test_png_pixel_data_over_the_chunk_limit_is_split_into_idat_chunks():
    # The limit is 1 GiB, under the 2^31 - 1 bytes a chunk's length can say; a small one shows the split.
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 40, 3), dtype=np.uint8))
    split, whole = io.BytesIO(), io.BytesIO()
    options = save_options("PNG", SourceInfo(), image.size, TAGS, DEFAULT_QUALITY)
    imageio._write_png(image, split, options, threads=1, idat_bytes=1000)
    write_image(image, whole, "PNG", SourceInfo(), TAGS, threads=1)
    chunks = png_chunks(split.getvalue())
    idat = [length for kind, length in chunks if kind == b"IDAT"]
    assert len(idat) > 5 and max(idat) == 1000 and idat[-1] <= 1000
    kinds = [kind for kind, _ in chunks]
    assert kinds[kinds.index(b"IDAT"):kinds.index(b"IDAT") + len(idat)] == [b"IDAT"] * len(idat)  # consecutive
    assert [length for kind, length in png_chunks(whole.getvalue()) if kind == b"IDAT"] == [sum(idat)]  # one below
    with Image.open(split) as read:
        assert np.array_equal(np.asarray(read), np.asarray(image))


@pytest.mark.parametrize("image_format, size", [("JPEG", (65_501, 1)), ("WEBP", (1, 16_384)), ("GIF", (65_536, 1))])
def test_sizes_a_format_cannot_encode_are_one_clear_error(image_format, size):
    with pytest.raises(ImageError, match=f"the {size[0]}x{size[1]} result is too large for {image_format}, which "
                                         f"holds at most .* pixels a side; PNG has no such limit"):
        write_image(Image.new("L", size), io.BytesIO(), image_format, SourceInfo(), TAGS)


@pytest.mark.parametrize("source_format, expected", [("MPO", "JPEG"), ("JPEG", "JPEG"), ("TIFF", "TIFF"),
                                                     ("PSD", "PNG"), (None, "PNG")])
def test_outputs_take_the_inputs_format_with_mpo_as_jpeg(source_format, expected):
    assert output_format_for(source_format) == expected


def test_format_for_extensions(tmp_path):
    assert format_for(tmp_path / "a.JPG") == "JPEG" and format_for(tmp_path / "a.tif") == "TIFF"
    assert format_for(tmp_path / "a.psd") is None  # Pillow reads PSD but cannot write it
    assert format_for(tmp_path / "noextension") is None


def test_extensions_outside_pillows_common_plugins_are_known_in_a_fresh_process():
    # pillow_format loads Pillow's other plugins only for an extension its common ones do not know
    code = ("from enhance_edge.io.imageio import pillow_format as f; "
            "print([f(s) for s in ('.png', '.webp', '.tiff', '.psd', '.txt')])")
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert printed.strip() == "['PNG', 'WEBP', 'TIFF', 'PSD', None]"


@settings(max_examples=30, deadline=None)
@given(width=st.integers(1, 40), height=st.integers(1, 40),
       mode=st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16"]),
       image_format=st.sampled_from(["PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF"]))
def test_any_size_and_mode_survives_a_write_and_read(width, height, mode, image_format):
    image = working_image(gradient(width, height, "RGBA" if mode in ("LA", "RGBA") else "RGB").convert(mode)
                          if mode != "I;16" else Image.fromarray(np.full((height, width), 4000, np.uint16)))
    buffer = io.BytesIO()
    write_image(image, buffer, image_format, SourceInfo(), TAGS)
    back, _ = read_image(io.BytesIO(buffer.getvalue()))
    assert back.size == (width, height) and back.mode in WORKING_MODES


# --- fuzzing the decode path -----------------------------------------------------------------

FUZZ_SEEDS = {
    "png": encoded(gradient(20, 12), "PNG"),
    "png16": encoded(Image.fromarray(np.arange(240, dtype=np.uint16).reshape(12, 20) * 200), "PNG"),
    "palette.png": encoded(gradient(20, 12).convert("P"), "PNG", transparency=0),
    "jpg": encoded(gradient(20, 12), "JPEG", exif=Image.Exif().tobytes(), icc_profile=SRGB),
    "gif": encoded(gradient(20, 12).convert("P"), "GIF"),
    "webp": encoded(gradient(20, 12, "RGBA"), "WEBP"),
    "tif": encoded(gradient(20, 12), "TIFF", compression="tiff_lzw"),
    "bmp": encoded(gradient(20, 12), "BMP"),
}
# Examples per format; ENHANCE_EDGE_FUZZ_CASES=5000 for a longer pass (the default keeps CI fast:
# about 1 s per format on 2 cores).
FUZZ_CASES = int(os.environ.get("ENHANCE_EDGE_FUZZ_CASES", "150"))
HANG_SECONDS = 10  # no decode of a file this small takes a fraction of that


def mutated(seed: bytes) -> st.SearchStrategy[bytes]:
    """``seed`` with bytes overwritten (anywhere, or in the header where sizes, modes and
    chunk lengths live), cut short, or with bytes inserted (repeated chunks, markers)."""
    def overwrite(edits):
        data = bytearray(seed)
        for position, value in edits:
            data[position] = value
        return bytes(data)

    anywhere = st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 255))
    in_header = st.tuples(st.integers(0, min(64, len(seed)) - 1), st.integers(0, 255))
    return st.one_of(
        st.lists(anywhere, min_size=1, max_size=8).map(overwrite),
        st.lists(in_header, min_size=1, max_size=4).map(overwrite),
        st.integers(1, len(seed) - 1).map(lambda length: seed[:length]),
        st.tuples(st.integers(0, len(seed)), st.binary(min_size=1, max_size=64)).map(
            lambda insert: seed[:insert[0]] + insert[1] + seed[insert[0]:]),
    )


class DecodeHung(BaseException):
    """Raised by the alarm: a BaseException, so read_image cannot turn it into an ImageError."""


@pytest.mark.parametrize("name", sorted(FUZZ_SEEDS))
def test_mutated_files_either_decode_or_raise_image_error(name, tmp_path, record_property):
    """Through both entries of the decode path (a file on disk, as the CLI reads; a file object,
    as the server does): every mutation decodes to a working mode within the pixel limit or is
    one ImageError line; nothing else escapes and nothing hangs."""
    outcomes = {"decoded": 0, "refused": 0}
    path = tmp_path / f"fuzzed.{name.rpartition('.')[2]}"

    def hung(signum, frame):
        raise DecodeHung(f"decoding a mutated {name} took over {HANG_SECONDS} s")

    @settings(max_examples=FUZZ_CASES, deadline=None, derandomize=True, database=None)
    @given(data=mutated(FUZZ_SEEDS[name]))
    def decode(data):
        path.write_bytes(data)
        for source in (path, io.BytesIO(data)):
            signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
            try:
                image, _ = read_image(source, max_pixels=1_000_000)
            except ImageError as exc:
                assert "\n" not in str(exc)
                outcomes["refused"] += 1
            else:
                assert image.mode in WORKING_MODES and image.width * image.height <= 1_000_000
                outcomes["decoded"] += 1
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        assert probe_pixels(path) >= 0 and made_by_enhance_edge(path) in (True, False)

    previous = signal.signal(signal.SIGALRM, hung)
    try:
        decode()
    finally:
        signal.signal(signal.SIGALRM, previous)
    print(f"\nfuzz {name}: {outcomes}")
    record_property("fuzz_outcomes", outcomes)
    assert outcomes["refused"] > 0  # the mutations do reach the error paths


@pytest.mark.parametrize("quality", [20, 75, 95])
def test_a_jpegs_quality_is_read_back_from_its_quantization_table(quality):
    from enhance_edge.io.imageio import jpeg_quality_of

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 40, 200)).save(buffer, "JPEG", quality=quality)
    with Image.open(buffer) as decoded:
        assert jpeg_quality_of(decoded.quantization) == quality
    assert jpeg_quality_of(None) is None and jpeg_quality_of({}) is None
