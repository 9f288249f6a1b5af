import numpy as np
import pytest
from PIL import Image

from enhance_edge.eval.protocol import interpolate, luma, make_hr, make_lr, psnr, score, ssim


def test_pairs_follow_protocol_sizes_and_filters():
    original = Image.fromarray(np.random.default_rng(0).integers(0, 256, (192, 168), np.uint8))
    hr = make_hr(original)
    lr = make_lr(hr)
    assert hr.size == (92, 112) and lr.size == (46, 56)
    assert np.array_equal(np.asarray(hr), np.asarray(original.resize((92, 112), Image.Resampling.LANCZOS)))
    assert np.array_equal(np.asarray(lr), np.asarray(hr.resize((46, 56), Image.Resampling.BICUBIC)))


def test_other_images_are_cropped_to_even_size():
    assert make_hr(Image.new("L", (31, 20)), hr_size=None).size == (30, 20)
    assert make_hr(Image.new("L", (31, 22)), hr_size=None, scale=4).size == (28, 20)  # a multiple of the scale


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


def test_colour_is_scored_on_pillows_ycbcr_luma_with_rgb_psnr_beside():
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (16, 16, 3), np.uint8)
    out = np.clip(hr.astype(int) + rng.integers(-9, 10, hr.shape), 0, 255).astype(np.uint8)
    y_hr, y_out = (np.asarray(Image.fromarray(a).convert("YCbCr"))[..., 0] for a in (hr, out))
    assert np.array_equal(luma(hr), y_hr) and not np.array_equal(y_hr, np.asarray(Image.fromarray(hr).convert("L")))
    gray = hr[..., 0]
    scores = score([hr, gray], [out, out[..., 0]])
    assert scores["psnr"] == pytest.approx((psnr(y_hr, y_out) + psnr(gray, out[..., 0])) / 2)
    assert scores["ssim"] == pytest.approx((ssim(y_hr, y_out) + ssim(gray, out[..., 0])) / 2)
    assert scores["rgb_psnr"] == pytest.approx(psnr(hr, out))  # colour images only
    assert "rgb_psnr" not in score([gray], [out[..., 0]])
