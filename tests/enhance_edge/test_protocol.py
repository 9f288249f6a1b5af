import numpy as np
import pytest
from PIL import Image

from enhance_edge.protocol import interpolate, make_hr, make_lr, psnr, score


def test_pairs_follow_protocol_sizes_and_filters():
    original = Image.fromarray(np.random.default_rng(0).integers(0, 256, (192, 168), np.uint8))
    hr = make_hr(original)
    lr = make_lr(hr)
    assert hr.size == (92, 112) and lr.size == (46, 56)
    assert np.array_equal(np.asarray(hr), np.asarray(original.resize((92, 112), Image.Resampling.LANCZOS)))
    assert np.array_equal(np.asarray(lr), np.asarray(hr.resize((46, 56), Image.Resampling.BICUBIC)))


def test_other_images_are_cropped_to_even_size():
    assert make_hr(Image.new("L", (31, 20)), hr_size=None).size == (30, 20)


def test_psnr_is_skimage_on_8_bit_images():
    hr = np.full((4, 4), 100, np.uint8)
    out = hr.copy()
    out[0, 0] = 110  # MSE = 100 / 16
    assert psnr(hr, out) == pytest.approx(10 * np.log10(255**2 / (100 / 16)))


def test_scores_are_averaged_per_image():
    hr = np.full((8, 8), 100, np.uint8)  # SSIM's 7x7 window needs at least 7x7
    slightly, more = hr.copy(), hr.copy()
    slightly[0, 0], more[0, 0] = 110, 140
    assert score([hr, hr], [slightly, more])["psnr"] == pytest.approx((psnr(hr, slightly) + psnr(hr, more)) / 2)


def test_interpolation_upscales_by_the_scale():
    assert interpolate(Image.new("L", (5, 7)), "lanczos").size == (10, 14)
