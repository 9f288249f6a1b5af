"""The Upscaler API: every mode in, the right mode out, alpha without fringes, tiles, bad models."""

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from PIL import Image

from enhance_edge.errors import EnhanceEdgeError, ImageError, ModelError
from enhance_edge.core.processing import chroma_pixels, from_unit_float, rgb_to_luma_chroma, to_unit_float
from enhance_edge.io.imageio import DEFAULT_QUALITY
from enhance_edge.core.upscaler import Upscaler

from ...conftest import with_int8_metadata


@pytest.fixture(scope="module")
def upscaler(tiny_onnx):
    return Upscaler(tiny_onnx, threads=1)


def photo(width=40, height=30, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    base = np.stack([0.6 + 0.3 * np.sin(5 * x), 0.4 + 0.3 * np.cos(4 * y), 0.3 + 0.2 * x * y], -1)
    return (np.clip(base + 0.03 * rng.random((height, width, 3)), 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize("mode, expected", [
    ("L", "L"), ("LA", "LA"), ("RGB", "RGB"), ("RGBA", "RGBA"), ("P", "RGB"), ("CMYK", "RGB"), ("1", "L"),
])
def test_modes_in_and_out(upscaler, mode, expected):
    result = upscaler.upscale(Image.fromarray(photo()).convert(mode))
    assert result.mode == expected and result.size == (80, 60)


def test_gray_runs_the_model_directly(upscaler):
    pixels = photo()[..., 0]
    expected = from_unit_float(upscaler.upscale_plane(to_unit_float(pixels)))
    assert np.array_equal(np.asarray(upscaler.upscale(Image.fromarray(pixels))), expected)


def test_sixteen_bit_gray_keeps_sixteen_bit_precision(upscaler):
    pixels = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 61 + 1000)
    result = upscaler.upscale(Image.fromarray(pixels))
    assert result.mode == "I;16"
    values = np.asarray(result)
    assert np.array_equal(values, from_unit_float(upscaler.upscale_plane(to_unit_float(pixels)), np.uint16))
    assert len(np.unique(values)) > 256 and (values % 257 != 0).any()  # not 8-bit in disguise


def test_colour_keeps_its_chroma(upscaler):
    flat = np.zeros((40, 40, 3), np.uint8)
    flat[...] = (200, 80, 30)
    out = np.asarray(upscaler.upscale(Image.fromarray(flat))).astype(int)
    centre = out[20:60, 20:60].reshape(-1, 3)  # away from the zero-padded border
    # Whatever the (random test) model does to luma, red stays well above green above blue.
    assert (centre[:, 0] > centre[:, 1] + 60).all() and (centre[:, 1] > centre[:, 2] + 20).all()


def test_for_a_jpeg_the_luma_is_the_models_and_the_chroma_averages_back_to_the_inputs(upscaler):
    rgb = photo()
    out = upscaler.upscale_for_jpeg(Image.fromarray(rgb))
    assert out.mode == "YCbCr" and out.size == (80, 60)
    luma, chroma = np.empty((30, 40), np.float32), np.empty((2, 30, 40), np.float32)
    rgb_to_luma_chroma(rgb, luma, chroma)
    pixels = np.asarray(out)
    assert np.array_equal(pixels[..., 0], from_unit_float(upscaler.upscale_plane(luma)))
    blocks = pixels[..., 1:].reshape(30, 2, 40, 2, 2).astype(int)
    assert (blocks == blocks[:, :1, :, :1]).all()  # one value per 2x2 block: 4:2:0's average keeps it
    assert np.array_equal(np.moveaxis(blocks[:, 0, :, 0], -1, 0), [chroma_pixels(plane) for plane in chroma])
    pillow = np.asarray(Image.fromarray(rgb).convert("YCbCr"))[..., 1:]  # JPEG's own 8-bit chroma
    assert np.abs(blocks[:, 0, :, 0] - pillow.astype(int)).max() <= 1


def test_a_jpeg_file_is_what_the_rgb_output_saved_as_jpeg_was_within_a_level_on_average(upscaler, tmp_path):
    source = tmp_path / "photo.png"
    Image.fromarray(photo(64, 48)).save(source)
    upscaler.upscale_file(source, tmp_path / "out.jpg")
    upscaler.upscale(Image.open(source)).save(tmp_path / "rgb.jpg", quality=DEFAULT_QUALITY)
    written, via_rgb = (np.asarray(Image.open(tmp_path / name)).astype(int) for name in ("out.jpg", "rgb.jpg"))
    assert written.shape == via_rgb.shape == (96, 128, 3)
    assert np.abs(written - via_rgb).mean() < 1.0


def test_for_a_jpeg_at_x4_the_chroma_is_bicubic_to_half_the_output_size(tiny_x4_onnx):
    rgb = photo()
    out = np.asarray(Upscaler(tiny_x4_onnx, threads=1).upscale_for_jpeg(Image.fromarray(rgb)))
    assert out.shape == (120, 160, 3)
    blocks = out[..., 1:].reshape(60, 2, 80, 2, 2)
    assert (blocks == blocks[:, :1, :, :1]).all()
    luma, chroma = np.empty((30, 40), np.float32), np.empty((2, 30, 40), np.float32)
    rgb_to_luma_chroma(rgb, luma, chroma)
    expected = [np.asarray(Image.fromarray(chroma_pixels(plane)).resize((80, 60), Image.Resampling.BICUBIC))
                for plane in chroma]
    assert np.array_equal(np.moveaxis(blocks[:, 0, :, 0], -1, 0), expected)


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA"])
def test_for_a_jpeg_an_image_without_colour_or_with_alpha_is_upscaled_as_always(upscaler, mode):
    image = Image.fromarray(photo()).convert(mode)
    jpeg, plain = upscaler.upscale_for_jpeg(image), upscaler.upscale(image)
    assert jpeg.mode == plain.mode == mode and np.array_equal(np.asarray(jpeg), np.asarray(plain))


def test_for_a_jpeg_a_resized_output_is_upscaled_as_always(tiny_onnx):
    resizing = Upscaler(tiny_onnx, threads=1, outscale=1.5)
    image = Image.fromarray(photo())
    jpeg, plain = resizing.upscale_for_jpeg(image), resizing.upscale(image)
    assert jpeg.mode == "RGB" and jpeg.size == (60, 45) and np.array_equal(np.asarray(jpeg), np.asarray(plain))


def test_alpha_is_upscaled_bicubically_and_kept(upscaler):
    rgba = np.dstack([photo(), np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (30, 1))])
    out = np.asarray(upscaler.upscale(Image.fromarray(rgba)))
    expected = np.asarray(Image.fromarray(rgba[..., 3]).resize((80, 60), Image.Resampling.BICUBIC))
    assert np.array_equal(out[..., 3], expected)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_no_dark_fringe_where_transparent_pixels_are_black(upscaler, mode):
    size = 64
    y, x = np.mgrid[0:size, 0:size]
    inside = (y - 32) ** 2 + (x - 32) ** 2 < 18 ** 2
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[inside] = (230, 200, 90, 255)  # a light disc; the transparent rest is black, as editors leave it
    out = np.asarray(upscaler.upscale(Image.fromarray(rgba).convert(mode)).convert("RGBA")).astype(float)
    edge = (out[..., 3] > 30) & (out[..., 3] < 225)
    core = out[..., 3] == 255
    assert edge.sum() > 50
    edge_luma, core_luma = out[edge][:, :3].mean(), out[core][:, :3].mean()
    assert abs(edge_luma - core_luma) < 10  # without the fill the edge is some 40% darker


def test_arrays_in_arrays_out(upscaler):
    assert upscaler.upscale(photo()).shape == (60, 80, 3)
    assert upscaler.upscale(photo()[..., 0]).dtype == np.uint8
    assert upscaler.upscale(np.zeros((5, 7), np.uint16)).dtype == np.uint16
    assert upscaler.upscale(np.zeros((5, 7, 4), np.uint8)).shape == (10, 14, 4)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((5, 7), np.float32), "expected a uint8/uint16 array"),
    (np.zeros((5, 7, 3), np.uint16), "cannot use a uint16 array of shape"),
    ("face.png", r"expected a PIL image or numpy array, got str \(for a file, upscale_file\(path\)\)"),
    (Path("face.png"), r"got \w*Path \(for a file, upscale_file\(path\)\)"),
    (42, r"got int$"),
    (Image.new("L", (0, 5)), "image has no pixels: 0x5"),
])
def test_unusable_inputs_are_named(upscaler, bad, message):
    with pytest.raises(ImageError, match=message):
        upscaler.upscale(bad)


def test_forced_tiles_equal_the_whole_image(tiny_onnx, upscaler):
    image = Image.fromarray(photo(90, 70))
    tiled = Upscaler(tiny_onnx, threads=1, tile=16)
    assert tiled.tile_for(90, 70) == 16 and tiled.tile_for(16, 10) is None
    difference = np.abs(np.asarray(tiled.upscale(image), int) - np.asarray(upscaler.upscale(image), int))
    assert difference.max() <= 1  # float rounding at most


def test_a_small_memory_budget_tiles_automatically(tiny_onnx, upscaler):
    frugal = Upscaler(tiny_onnx, threads=1, max_memory=(128 << 20) + 600_000)  # just above the fixed base
    assert frugal.tile_for(90, 70) is not None and upscaler.tile_for(90, 70) is None
    image = Image.fromarray(photo(90, 70))
    assert np.abs(np.asarray(frugal.upscale(image), int) - np.asarray(upscaler.upscale(image), int)).max() <= 1


def test_default_budget_tiles_a_12_megapixel_photo(upscaler):
    assert upscaler.tile_for(4000, 3000) is not None and upscaler.tile_for(1000, 800) is None


def test_the_peak_memory_estimate_keeps_to_the_budget_only_while_tiles_can(tiny_onnx, upscaler):
    budget = upscaler.max_memory
    assert upscaler.tile_for(1000, 800) is None and upscaler.peak_memory(1000, 800) <= budget
    assert upscaler.tile_for(4000, 3000) is not None and upscaler.peak_memory(4000, 3000) <= budget
    assert upscaler.peak_memory(8000, 6000) > budget  # 48 megapixels: the whole-image buffers alone are over 1 GiB
    assert upscaler.peak_memory(400, 300, "RGBA") > upscaler.peak_memory(400, 300, "L")
    forced = Upscaler(tiny_onnx, threads=1, tile=16)
    assert forced.peak_memory(4000, 3000) < upscaler.peak_memory(4000, 3000)  # smaller tiles, smaller model runs


def test_progress_counts_every_input_pixel(tiny_onnx, upscaler):
    for instance in (upscaler, Upscaler(tiny_onnx, threads=1, tile=16)):
        done = []
        instance.upscale(Image.fromarray(photo(50, 35)), progress=done.append)
        assert sum(done) == 50 * 35


@pytest.mark.parametrize("options, message", [({"tile": 0}, "tile must be >= 1"),
                                              ({"max_memory": 0}, "max_memory must be > 0")])
def test_bad_settings_are_named(tiny_onnx, options, message):
    with pytest.raises(EnhanceEdgeError, match=message):
        Upscaler(tiny_onnx, **options)


def test_model_name_has_file_and_hash(upscaler, tiny_onnx):
    name = upscaler.model_name
    assert name.startswith(f"{tiny_onnx.name} (sha256 ") and len(name.split("sha256 ")[1]) == 13


def _model_with_input_shape(tiny_onnx, tmp_path, shape):
    """A model with our metadata whose input is ``shape`` (Identity to the output)."""
    metadata = {p.key: p.value for p in onnx.load(str(tiny_onnx)).metadata_props}
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, metadata)
    path = tmp_path / "odd.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("shape", [["n", 3, "h", "w"], [1, 1, 64, 64], ["h", "w"]])
def test_models_whose_inputs_do_not_fit_are_refused_at_load(tiny_onnx, tmp_path, shape):
    path = _model_with_input_shape(tiny_onnx, tmp_path, shape)
    with pytest.raises(ModelError, match=r"takes inputs of shape .*needs \(batch, 1, height, width\)"):
        Upscaler(path)


def test_a_model_with_the_wrong_output_size_fails_per_image(tiny_onnx, tmp_path):
    identity = Upscaler(_model_with_input_shape(tiny_onnx, tmp_path, ["n", 1, "h", "w"]))
    with pytest.raises(ModelError, match=r"returned shape \(1, 1, 5, 7\), expected \(1, 1, 10, 14\)"):
        identity.upscale(np.zeros((5, 7), np.uint8))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(width=st.integers(1, 30), height=st.integers(1, 30),
       mode=st.sampled_from(["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "YCbCr"]),
       seed=st.integers(0, 1000))
def test_any_size_and_mode_is_upscaled(upscaler, width, height, mode, seed):
    rgb = Image.fromarray(photo(width, height, seed))
    if mode in ("I;16", "I", "F"):
        image = Image.fromarray((np.asarray(rgb)[..., 0].astype(np.uint16) * 257)).convert(mode)
    else:
        image = rgb.convert("RGBA").convert(mode) if mode in ("LA", "PA") else rgb.convert(mode)
    result = upscaler.upscale(image)
    assert result.size == (2 * width, 2 * height)
    assert result.mode == {"1": "L", "P": "RGB", "PA": "RGBA", "CMYK": "RGB", "I": "I;16", "F": "I;16",
                           "YCbCr": "RGB"}.get(mode, mode)


@pytest.fixture(scope="module")
def conditioned(tiny_conditioned_onnx):
    return Upscaler(tiny_conditioned_onnx, threads=1)


def test_strength_trades_sharpness_for_clean_up_and_auto_reads_it_from_the_image(conditioned):
    pixels = photo()[..., 0]
    plane = to_unit_float(pixels)
    soft, hard = (np.asarray(conditioned.upscale(pixels, strength=s), np.int16) for s in (0.0, 1.0))
    assert np.abs(soft - hard).max() > 0
    estimated = conditioned.estimate_strength(plane)
    assert 0.0 <= estimated <= 1.0 and conditioned.strength_for(plane) == estimated
    np.testing.assert_array_equal(conditioned.upscale(pixels), conditioned.upscale(pixels, strength=estimated))
    fixed = Upscaler(conditioned.info.path, threads=1, strength=0.0)
    np.testing.assert_array_equal(fixed.upscale(pixels), soft)


def test_a_tiled_image_runs_every_tile_at_the_whole_images_strength(tiny_conditioned_onnx, conditioned):
    pixels = photo(width=90, height=70)[..., 0]
    tiled = Upscaler(tiny_conditioned_onnx, threads=1, tile=32)
    np.testing.assert_array_equal(tiled.upscale(pixels), conditioned.upscale(pixels))


def test_an_untiled_large_image_reads_its_strength_in_its_own_run(tiny_conditioned_onnx, conditioned, monkeypatch):
    import onnxruntime as ort

    pixels = np.random.default_rng(1).integers(0, 256, (600, 520), dtype=np.uint8)  # over 512x512: no crops
    runs = []
    session_run = conditioned._session_run
    monkeypatch.setattr(conditioned, "_session_run", lambda plane, strength: runs.append(plane.shape)
                        or session_run(plane, strength))
    out = conditioned.upscale(pixels)
    assert conditioned.tile_for(520, 600, "L") is None and runs == [(600, 520)]
    plain = ort.InferenceSession(str(tiny_conditioned_onnx), providers=["CPUExecutionProvider"])
    expected = plain.run(None, {"input": to_unit_float(pixels)[None, None]})[0][0, 0]
    assert np.abs(out.astype(int) - from_unit_float(expected)).max() <= 1  # other thread counts: float rounding


def test_a_large_image_is_estimated_from_crops_spread_over_it_on_its_jpeg_grid(conditioned):
    plane = np.random.default_rng(0).random((1200, 1000), dtype=np.float32)
    # spread evenly (0, 357, 714, 1072 down), each moved back onto the 8-pixel grid a JPEG's blocks start on
    grid = [(top, left) for top in (0, 352, 712, 1072) for left in (0, 288, 576, 872)]
    crops = [conditioned.estimate_strength(plane[top:top + 128, left:left + 128]) for top, left in grid]
    assert conditioned.estimate_strength(plane) == pytest.approx(np.mean(crops), abs=1e-6)
    off_grid = [conditioned.estimate_strength(plane[abs(top - 3):abs(top - 3) + 128, left:left + 128])
                for top, left in grid]
    assert np.mean(off_grid) != pytest.approx(np.mean(crops), abs=1e-6)  # the crops' places matter


@pytest.mark.parametrize("strength, message", [
    (1.5, r"expected auto or a number from 0 to 1, got 1.5"),
    ("high", r"expected auto or a number from 0 to 1, got 'high'"),
])
def test_bad_strengths_are_named(conditioned, strength, message):
    with pytest.raises(EnhanceEdgeError, match=message):
        conditioned.upscale(photo(), strength=strength)


def test_a_model_without_the_strength_input_refuses_a_number_but_takes_auto(upscaler, tiny_onnx):
    assert upscaler.estimate_strength(to_unit_float(photo()[..., 0])) is None
    with pytest.raises(ModelError, match="has no strength control"):
        Upscaler(tiny_onnx, strength=0.5)
    with pytest.raises(ModelError, match="has no strength control"):
        upscaler.upscale(photo(), strength=0.5)


def test_bundled_names_and_precisions_resolve_as_in_the_cli(tmp_path, monkeypatch):
    from enhance_edge.core import model
    from enhance_edge.core.model import bundled_model_path

    assert Upscaler("fast", precision="fp32").info.path.endswith("fast.onnx")
    assert Upscaler("fast", precision="int8").info.path.endswith("fast-int8.onnx")
    assert Upscaler("fast").info.path == str(bundled_model_path("fast", "auto"))
    # An install without the int8 file: "auto" is fp32, and int8 is refused, naming the way to make one.
    shutil.copy(bundled_model_path("fast"), tmp_path / "fast.onnx")
    monkeypatch.setattr(model, "_bundled_file", lambda name, precision: tmp_path / (
        f"{name}.onnx" if precision == "fp32" else f"{name}-int8.onnx"))
    assert Upscaler("fast").info.path == str(tmp_path / "fast.onnx")
    with pytest.raises(ModelError, match="this install has no int8 'fast' model .* `enhance-edge quantize"):
        Upscaler("fast", precision="int8")
    with pytest.raises(ModelError, match="no bundled model named 'nope'|does not exist"):
        Upscaler("nope")


def _plain_onnxruntime(path, pixels: np.ndarray, **feeds: float) -> tuple[np.ndarray, float]:
    """The model file alone in onnxruntime, as an app would run it: 8-bit gray in, 8-bit gray out."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = (pixels.astype(np.float32) / 255)[None, None]
    out, used = session.run(None, {"input": x, **{k: np.array([v], np.float32) for k, v in feeds.items()}})
    return np.clip(np.round(out[0, 0] * 255), 0, 255).astype(np.uint8), float(used.flat[0])


def test_the_file_alone_gives_the_upscalers_pixels_and_strength(conditioned, tiny_conditioned_onnx):
    pixels = photo()[..., 0]
    plain, used = _plain_onnxruntime(tiny_conditioned_onnx, pixels)
    np.testing.assert_array_equal(np.asarray(conditioned.upscale(pixels)), plain)
    assert conditioned.last_strength == pytest.approx(used)
    given, _ = _plain_onnxruntime(tiny_conditioned_onnx, pixels, strength=0.8)
    np.testing.assert_array_equal(np.asarray(conditioned.upscale(pixels, strength=0.8)), given)


def test_a_jpeg_runs_at_what_its_pixels_read_as_the_file_alone_runs_it(conditioned, tiny_conditioned_onnx):
    """Nothing but the pixels sets "auto": a JPEG opened with Pillow (which carries its tables)
    upscales as its decoded pixels do, and as the file alone runs them."""
    import io

    buffer = io.BytesIO()
    Image.fromarray(photo()[..., 0]).save(buffer, "JPEG", quality=30)
    with Image.open(buffer) as opened:
        from_file = np.asarray(conditioned.upscale(opened))
        decoded = np.asarray(opened)
    plain, used = _plain_onnxruntime(tiny_conditioned_onnx, decoded)
    np.testing.assert_array_equal(from_file, plain)
    assert conditioned.last_strength == pytest.approx(used)


def test_scale_and_outscale_choose_the_bundled_model_of_that_scale():
    from enhance_edge.core.model import bundled_model_path

    assert Upscaler(scale=4, threads=1).info.path == str(bundled_model_path("default-x4", "auto"))
    larger = Upscaler(outscale=3, threads=1)  # x4, then Lanczos down to x3
    assert larger.scale == 4 and larger.output_dimensions(10, 8) == (30, 24)
    smaller = Upscaler(outscale=1.5, threads=1)
    assert smaller.scale == 2 and smaller.info.path == str(bundled_model_path("default", "auto"))
    face = Image.fromarray(np.random.default_rng(0).integers(0, 256, (14, 12), dtype=np.uint8))
    assert larger.upscale(face).size == (36, 42)
    assert np.asarray(larger.upscale(np.asarray(face))).shape == (42, 36)


def test_a_model_files_scale_is_checked_and_its_output_resized(tiny_onnx):
    with pytest.raises(ModelError, match="upscales x2, not the x4 asked for"):
        Upscaler(tiny_onnx, scale=4)
    targeted = Upscaler(tiny_onnx, threads=1, width=30)
    assert targeted.scale == 2 and targeted.upscale(Image.new("RGB", (12, 10))).size == (30, 25)


# An int8 file runs every image, and every tile, in int8: no per-image return to fp32 (issue 27).

def test_an_int8_file_runs_every_image_and_tile_in_int8(tmp_path, tiny_onnx):
    fp32 = tmp_path / "tiny.onnx"
    fp32.write_bytes(tiny_onnx.read_bytes())
    int8 = with_int8_metadata(fp32, tmp_path / "tiny-int8.onnx")
    # a flat image beside a busy one: the flat half is what the per-image routing handed to fp32
    image = np.hstack([np.full((24, 40), 128, np.uint8),
                       np.random.default_rng(0).integers(0, 256, (24, 40)).astype(np.uint8)])
    tiled, whole, only_fp32 = Upscaler(int8, threads=1, tile=40), Upscaler(int8, threads=1), Upscaler(fp32, threads=1)
    out = tiled.upscale(image)
    assert tiled.precision == tiled.last_precision == "int8"
    np.testing.assert_array_equal(out, whole.upscale(image))
    flat_half = (slice(None), slice(0, 80))
    assert not np.array_equal(out[flat_half], only_fp32.upscale(image)[flat_half])  # the stand-in's own pixels
