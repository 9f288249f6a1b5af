"""The model that ships inside the package: loads, describes itself, beats interpolation."""

import json

import numpy as np
from PIL import Image

from enhance_edge import Upscaler
from enhance_edge.model import bundled_model_path
from enhance_edge.protocol import interpolate, make_hr, make_lr, psnr


def test_bundled_model_is_small_and_self_describing():
    path = bundled_model_path()
    assert path.stat().st_size < 600 * 1024  # the report's generator is ~0.47 MB in float32
    info = Upscaler().info
    assert (info.scale, info.channels, info.layout, info.value_range) == (2, 1, "NCHW", (0.0, 1.0))
    trained_on = info.json_field("trained_on")
    assert trained_on["folder"] == "yale_b_cropped" and trained_on["images"]["train"] == 1710
    assert set(info.json_field("test")) >= {"psnr", "ssim"}
    assert json.loads(info.metadata["generator_config"])["channels"] > 0


def test_bundled_model_beats_bicubic_and_lanczos_on_unseen_yale_faces(yale_test_faces):
    assert len(yale_test_faces) == 12
    upscaler = Upscaler()
    scores = {"model": [], "bicubic": [], "lanczos": []}
    for path in yale_test_faces:
        with Image.open(path) as image:
            hr = make_hr(image.convert("L"))
        lr = make_lr(hr)
        hr_pixels = np.asarray(hr)
        scores["model"].append(psnr(hr_pixels, np.asarray(upscaler.upscale(lr))))
        for method in ("bicubic", "lanczos"):
            scores[method].append(psnr(hr_pixels, np.asarray(interpolate(lr, method))))
    mean = {method: np.mean(values) for method, values in scores.items()}
    assert mean["model"] > mean["lanczos"] > mean["bicubic"], mean
