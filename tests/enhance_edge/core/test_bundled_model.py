"""The models that ship inside the package: each loads, keeps the ONNX contract any onnxruntime
binding relies on, describes itself, and beats interpolation on faces it never saw."""

import json

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from enhance_edge import Upscaler
from enhance_edge.core.model import BUNDLED_MODELS, bundled_model_path, bundled_models, bundled_scale
from enhance_edge.eval.degradation import jpeg
from enhance_edge.eval.protocol import interpolate, make_hr, make_lr, psnr
from enhance_edge.core.tiling import receptive_radius, working_bytes_per_pixel

SHIPPED = bundled_models()


def test_every_bundled_name_ships_an_fp32_file():
    assert {m.name for m in SHIPPED if m.precision == "fp32"} == set(BUNDLED_MODELS) == {"default", "fast",
                                                                                          "default-x4"}


@pytest.mark.parametrize("shipped", SHIPPED, ids=lambda m: f"{m.name}-{m.precision}")
def test_plain_onnxruntime_contract(shipped):
    """What docs/onnx-contract.md promises, read with onnxruntime alone."""
    session = ort.InferenceSession(shipped.path, providers=["CPUExecutionProvider"])
    [model_input], outputs = session.get_inputs(), session.get_outputs()
    assert (model_input.name, model_input.type) == ("input", "tensor(float)")
    assert [(o.name, o.type) for o in outputs] == [("output", "tensor(float)"), ("strength_used", "tensor(float)")]
    # The strength is the one optional input: an initializer a feed overrides, -1 ("auto": estimate it) unless fed.
    optional = {i.name: (i.type, i.shape) for i in session.get_overridable_initializers()}
    assert optional == {"strength": ("tensor(float)", [1])}
    batch, channels, height, width = model_input.shape
    assert channels == 1 and all(isinstance(d, str) for d in (batch, height, width))  # dynamic N, H, W
    metadata = session.get_modelmeta().custom_metadata_map
    assert {k: metadata[k] for k in ("format", "scale", "channels", "value_range", "layout", "dtype", "colour",
                                     "precision")} == {
        "format": "enhance-edge-onnx/2", "scale": str(bundled_scale(shipped.name)), "channels": "1",
        "value_range": "0,1", "layout": "NCHW", "dtype": "float32", "colour": "luma", "precision": shipped.precision}
    x = np.random.default_rng(0).random((3, 1, 9, 14), dtype=np.float32)  # dynamic N, H, W
    scale = bundled_scale(shipped.name)
    out, used = session.run(None, {"input": x})
    assert out.shape == (3, 1, 9 * scale, 14 * scale) and used.shape == (3, 1, 1, 1)
    assert np.all((0 <= used) & (used <= 1))
    _, given = session.run(None, {"input": x, "strength": np.array([0.25], np.float32)})
    # an int8 file quantizes the level it runs at, as it does the image, to steps of 1/255
    step = 1 / 255 if shipped.precision == "int8" else 0
    np.testing.assert_allclose(given, np.full((3, 1, 1, 1), 0.25, np.float32), rtol=0, atol=step)


def _plain_pixels(path: str, image: Image.Image) -> np.ndarray:
    """The file alone on a gray image, 8-bit in and out: only ``input`` fed."""
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = (np.asarray(image, np.float32) / 255)[None, None]
    out = session.run(None, {"input": x})[0]
    return np.clip(np.round(out[0, 0] * 255), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("quality", [None, 60], ids=["png", "jpeg-q60"])
@pytest.mark.parametrize("shipped", SHIPPED, ids=lambda m: f"{m.name}-{m.precision}")
def test_the_file_alone_gives_the_upscalers_pixels(shipped, yale_test_faces, tmp_path, quality):
    """One file is the whole model: a plain onnxruntime run of a whole face, fed only ``input``, is
    what `enhance-edge upscale` writes, within a level, for a PNG and a JPEG alike."""
    with Image.open(yale_test_faces[0]) as face:
        source = tmp_path / ("face.png" if quality is None else "face.jpg")
        face.convert("L").save(source, **({} if quality is None else {"quality": quality}))
    with Image.open(source) as opened:
        ours = np.asarray(Upscaler(shipped.path).upscale(opened), np.int16)
        plain = _plain_pixels(shipped.path, opened.convert("L")).astype(np.int16)
    assert np.abs(ours - plain).max() <= 1


@pytest.mark.parametrize("shipped", SHIPPED, ids=lambda m: f"{m.name}-{m.precision}")
def test_a_jpeg_cropped_off_its_block_grid_is_read_as_degraded_as_the_whole_jpeg(shipped, yale_test_faces):
    """A face cut out of a larger JPEG keeps the blocks where the cut leaves them: the file's own
    estimator reads them there as it does on the grid (the estimators before it read them as clean)."""
    upscaler, aligned, shifted = Upscaler(shipped.path), [], []
    for path in yale_test_faces:
        with Image.open(path) as image:
            lr = make_lr(make_hr(image.convert("L"), scale=shipped.scale), shipped.scale)
        for offset, readings in (((0, 0), aligned), ((3, 5), shifted)):
            plane = np.asarray(jpeg(lr, 50, offset), np.float32) / 255
            readings.append(upscaler.strength_for(plane))
    assert min(shifted) > 0 and np.mean(shifted) > 0.7 * np.mean(aligned), (aligned, shifted)


@pytest.mark.parametrize("shipped", SHIPPED, ids=lambda m: f"{m.name}-{m.precision}")
def test_bundled_model_is_small_and_self_describing(shipped):
    # The report's generator was ~0.47 MB in float32; the condensed ones and their estimator are smaller.
    assert shipped.file_bytes < 500 * 1024
    info = Upscaler(shipped.path).info
    trained_on = info.json_field("trained_on")
    assert trained_on["folder"] == "yale_b_cropped" and trained_on["images"]["train"] == 1710
    # docs/evaluation.md's test faces: Lanczos scores 37.50 dB at x2 and 31.17 at x4
    assert shipped.test_psnr == info.json_field("test")["psnr"] > {2: 38.5, 4: 32.5}[shipped.scale]
    assert json.loads(info.metadata["generator_config"])["channels"] > 0
    # What tiling needs, stated in the file (added to the files shipped before the exporter wrote it).
    config = info.json_field("generator_config")
    assert (info.receptive_radius, info.working_bytes_per_pixel) == (
        int(info.metadata["receptive_radius"]), int(info.metadata["working_bytes_per_pixel"])) == (
        receptive_radius(config), working_bytes_per_pixel(config))
    assert shipped.macs_per_input_pixel == int(info.metadata["macs_per_input_pixel"])
    # a 1-megapixel photo runs whole (one run, no tiles, no estimation crops) under the default 1 GiB
    assert Upscaler(shipped.path).tile_for(1024, 1024, "RGB") is None


def test_the_fast_model_costs_a_fraction_of_the_default():
    cost = {m.name: m.macs_per_input_pixel for m in SHIPPED if m.precision == "fp32"}
    assert cost["fast"] * 3 < cost["default"]


def _mean_psnr(upscaler: Upscaler, hrs: list[Image.Image]) -> dict[str, float]:
    scores = {"model": [], "bicubic": [], "lanczos": []}
    for hr in hrs:
        lr, hr_pixels = make_lr(hr, upscaler.scale), np.asarray(hr)
        scores["model"].append(psnr(hr_pixels, np.asarray(upscaler.upscale(lr))))
        for method in ("bicubic", "lanczos"):
            scores[method].append(psnr(hr_pixels, np.asarray(interpolate(lr, method, upscaler.scale))))
    return {method: float(np.mean(values)) for method, values in scores.items()}


@pytest.mark.parametrize("shipped", SHIPPED, ids=lambda m: f"{m.name}-{m.precision}")
def test_bundled_model_beats_bicubic_and_lanczos_on_unseen_yale_faces(shipped, yale_test_faces):
    assert len(yale_test_faces) == 12
    hrs = []
    for path in yale_test_faces:
        with Image.open(path) as image:
            hrs.append(make_hr(image.convert("L"), scale=shipped.scale))
    mean = _mean_psnr(Upscaler(shipped.path), hrs)
    assert mean["model"] > mean["lanczos"] + 1.0 and mean["lanczos"] > mean["bicubic"], mean


@pytest.mark.parametrize("shipped", SHIPPED, ids=lambda m: f"{m.name}-{m.precision}")
def test_bundled_model_beats_lanczos_on_faces_of_another_data_set(shipped):
    """scikit-image's bundled LFW subset (faces in the wild, 25x25): never used in training or
    to choose anything. HR: each face cropped to 24x24; LR: its bicubic half, as docs/evaluation.md."""
    from skimage.data import lfw_subset

    faces = lfw_subset()[:100]  # the first 100 are faces, the rest are not
    hrs = [Image.fromarray((face[:24, :24] * 255).round().astype(np.uint8)) for face in faces]
    mean = _mean_psnr(Upscaler(shipped.path), hrs)
    assert mean["model"] > mean["lanczos"] > mean["bicubic"], mean


def test_the_default_is_the_default_model_in_the_precision_auto_picks():
    assert Upscaler().info.path == str(bundled_model_path("default", "auto"))
    assert Upscaler(precision="fp32").info.path == str(bundled_model_path("default", "fp32"))
