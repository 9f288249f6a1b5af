import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from enhance_edge.apps.cli import main
from enhance_edge.eval import degradation
from enhance_edge.eval.degradation import (LEVEL_UNIT, DegradationConfig, anisotropic_blur, condition_lr,
                                           condition_steps, degrade, downscale, gaussian_blur, gaussian_noise, jpeg,
                                           level_of, poisson_noise)
from enhance_edge.errors import DataError
from enhance_edge.eval.protocol import make_lr

from ...conftest import smooth_image


@pytest.fixture
def hr() -> Image.Image:
    return Image.fromarray(smooth_image(np.random.default_rng(0), 40, 48))


def test_the_same_seed_draws_the_same_lr_and_level_and_another_seed_another(hr):
    config = DegradationConfig(clean_share=0.0, noise_probability=1.0, jpeg_probability=1.0)
    first, level = degrade(hr, config, np.random.default_rng(7))
    again, same_level = degrade(hr, config, np.random.default_rng(7))
    other, _ = degrade(hr, config, np.random.default_rng(8))
    assert first.size == (20, 24) and first.mode == "L"
    np.testing.assert_array_equal(np.asarray(first), np.asarray(again))
    assert level == same_level and 0 < level <= 1
    assert not np.array_equal(np.asarray(first), np.asarray(other))


def test_every_step_is_reproducible_from_its_generator(hr):
    for step in (lambda rng: gaussian_noise(hr, 3.0, rng), lambda rng: poisson_noise(hr, 3.0, rng)):
        np.testing.assert_array_equal(np.asarray(step(np.random.default_rng(1))),
                                      np.asarray(step(np.random.default_rng(1))))
    np.testing.assert_array_equal(np.asarray(jpeg(hr, 60)), np.asarray(jpeg(hr, 60)))


def test_the_clean_share_is_protocol_md_clean_bicubic_half_at_level_zero(hr):
    lr, level = degrade(hr, DegradationConfig(clean_share=1.0), np.random.default_rng(0))
    np.testing.assert_array_equal(np.asarray(lr), np.asarray(make_lr(hr)))
    assert level == 0.0


def test_both_orders_of_noise_and_jpeg_occur(hr):
    # With both steps always on, the order is the only thing left to chance: JPEG last leaves a
    # decoded JPEG (re-encoding it at the same quality changes little), noise last does not.
    config = DegradationConfig(clean_share=0.0, blur_probability=0.0, downscale_kernels=("bicubic",),
                               noise_probability=1.0, poisson_share=0.0, noise_sigma=(4.0, 4.0),
                               jpeg_probability=1.0, jpeg_quality=(50, 50))
    changes = []
    for seed in range(12):
        lr, _ = degrade(hr, config, np.random.default_rng(seed))
        pixels = np.asarray(lr, np.float64)
        changes.append(np.abs(np.asarray(jpeg(lr, 50), np.float64) - pixels).mean())
    assert min(changes) < 0.5 * max(changes)


def test_the_level_is_the_rms_change_in_units_of_level_unit():
    flat = Image.new("L", (64, 64), 128)
    noisy = gaussian_noise(flat, 4.0, np.random.default_rng(0))
    assert level_of(noisy, flat) == pytest.approx(4.0 / LEVEL_UNIT, rel=0.05)
    assert level_of(flat, flat) == 0.0
    loud = gaussian_noise(flat, 40.0, np.random.default_rng(0))
    assert level_of(loud, flat) == 1.0  # clipped


def test_poisson_noise_grows_with_the_signal():
    dark, bright = Image.new("L", (64, 64), 16), Image.new("L", (64, 64), 200)
    rng = np.random.default_rng(0)
    dark_sigma = np.asarray(poisson_noise(dark, 3.0, rng), np.float64).std()
    bright_sigma = np.asarray(poisson_noise(bright, 3.0, rng), np.float64).std()
    assert bright_sigma == pytest.approx(3.0 * np.sqrt(200 / 128), rel=0.1)
    assert dark_sigma < 0.5 * bright_sigma


def test_an_anisotropic_blur_with_equal_sigmas_is_a_gaussian_blur_and_keeps_the_mean(hr):
    round_blur = np.asarray(anisotropic_blur(hr, 1.2, 1.2, 0.7), np.float64)
    np.testing.assert_allclose(round_blur, np.asarray(gaussian_blur(hr, 1.2), np.float64), atol=3)
    stretched = anisotropic_blur(hr, 2.0, 0.3, 0.0)
    assert abs(np.asarray(stretched, np.float64).mean() - np.asarray(hr, np.float64).mean()) < 1.0
    # Blurred along x only: rows lose detail, columns keep theirs.
    pixels, original = np.asarray(stretched, np.float64), np.asarray(hr, np.float64)
    assert np.abs(np.diff(pixels, axis=1)).mean() < np.abs(np.diff(pixels, axis=0)).mean() * (
        np.abs(np.diff(original, axis=1)).mean() / np.abs(np.diff(original, axis=0)).mean())


def test_named_conditions_follow_protocol_md(hr):
    rng = np.random.default_rng
    np.testing.assert_array_equal(np.asarray(condition_lr(hr, "clean", rng(0))), np.asarray(make_lr(hr)))
    np.testing.assert_array_equal(np.asarray(condition_lr(hr, "jpeg75", rng(0))), np.asarray(jpeg(make_lr(hr), 75)))
    np.testing.assert_array_equal(np.asarray(condition_lr(hr, "noise3", rng(5))),
                                  np.asarray(gaussian_noise(make_lr(hr), 3.0, rng(5))))
    np.testing.assert_array_equal(np.asarray(condition_lr(hr, "blur", rng(0))),
                                  np.asarray(downscale(gaussian_blur(hr, 0.8), 2)))
    camera = jpeg(gaussian_noise(downscale(gaussian_blur(hr, 0.8), 2), 3.0, rng(3)), 75)
    np.testing.assert_array_equal(np.asarray(condition_lr(hr, "camera", rng(3))), np.asarray(camera))
    colour = Image.merge("RGB", [hr, hr.transpose(Image.Transpose.FLIP_LEFT_RIGHT), hr])
    assert condition_lr(colour, "camera", rng(0)).mode == "RGB"  # noise on every channel, colour JPEG
    with pytest.raises(DataError, match=r"unknown condition 'fog'; the protocol's \(docs/evaluation.md\) are clean, "
                                        "jpeg75"):
        condition_lr(hr, "fog", rng(0))


def test_a_chain_of_steps_applies_them_in_its_order_with_blur_on_the_hr(hr):
    rng = np.random.default_rng
    np.testing.assert_array_equal(np.asarray(condition_lr(hr, "noise=5>jpeg=50", rng(2))),
                                  np.asarray(jpeg(gaussian_noise(make_lr(hr), 5.0, rng(2)), 50)))
    np.testing.assert_array_equal(np.asarray(condition_lr(hr, "jpeg=50>noise=5", rng(2))),
                                  np.asarray(gaussian_noise(jpeg(make_lr(hr), 50), 5.0, rng(2))))
    np.testing.assert_array_equal(np.asarray(condition_lr(hr, "blur=0.8>noise=3>jpeg=75", rng(3))),
                                  np.asarray(condition_lr(hr, "camera", rng(3))))
    assert condition_steps("blur=1.2 > jpeg=95") == (("blur", 1.2), ("jpeg", 95.0))
    np.testing.assert_array_equal(np.asarray(condition_lr(hr, "noise=2>grid=3>jpeg=60>jpeg=90", rng(4))),
                                  np.asarray(jpeg(jpeg(gaussian_noise(make_lr(hr), 2.0, rng(4)), 60, (3, 3)), 90)))


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_a_jpeg_off_its_grid_has_the_blocks_of_a_crop_out_of_a_larger_jpeg(mode):
    big = Image.fromarray(smooth_image(np.random.default_rng(5), 64, 64)).convert(mode)
    left, top = 3, 5
    crop = (left, top, 48, 48)  # ends on the large image's block edges: only the first row and column differ
    shifted = np.asarray(jpeg(big.crop(crop), 60, (left, top)), np.int16)
    expected = np.asarray(jpeg(big, 60).crop(crop), np.int16)
    assert shifted.shape == expected.shape
    np.testing.assert_array_equal(shifted[8 - top:, 8 - left:], expected[8 - top:, 8 - left:])
    aligned = np.asarray(jpeg(big.crop(crop), 60), np.int16)
    assert np.abs(aligned - expected)[8 - top:, 8 - left:].mean() > 1  # the aligned grid is other blocks


def test_training_draws_the_jpeg_grid_offset_and_runs_saved_before_it_kept_the_grid_aligned(hr):
    config = DegradationConfig(clean_share=0.0, noise_probability=0.0, jpeg_probability=1.0, blur_probability=0.0,
                               downscale_kernels=("bicubic",), jpeg_quality=(50, 50))
    assert config.jpeg_grid_shift and DegradationConfig.from_dict(config.to_dict()) == config
    aligned = DegradationConfig.from_dict({k: v for k, v in config.to_dict().items() if k != "jpeg_grid_shift"})
    assert not aligned.jpeg_grid_shift
    lr, _ = degrade(hr, aligned, np.random.default_rng(1))
    np.testing.assert_array_equal(np.asarray(lr), np.asarray(jpeg(make_lr(hr), 50)))
    offsets = set()
    for seed in range(12):
        lr, level = degrade(hr, config, np.random.default_rng(seed))
        candidates = [(x, y) for x in range(8) for y in range(8)
                      if np.array_equal(np.asarray(lr), np.asarray(jpeg(make_lr(hr), 50, (x, y))))]
        assert len(candidates) == 1 and level == pytest.approx(level_of(lr, make_lr(hr)))
        offsets.add(candidates[0])
    assert len(offsets) > 6  # drawn, not fixed


def test_a_pair_drawn_with_and_without_the_grid_shift_differs_only_in_where_the_blocks_fall(hr, monkeypatch):
    encoded = []
    monkeypatch.setattr(degradation, "jpeg", lambda image, quality, offset=(0, 0): encoded.append((quality, offset))
                        or image)
    shifted, aligned = DegradationConfig(clean_share=0.0), DegradationConfig(clean_share=0.0, jpeg_grid_shift=False)
    for seed in range(8):
        lr_shifted, level_shifted = degrade(hr, shifted, np.random.default_rng(seed))
        lr_aligned, level_aligned = degrade(hr, aligned, np.random.default_rng(seed))
        np.testing.assert_array_equal(np.asarray(lr_shifted), np.asarray(lr_aligned))  # the same noise and blur
        assert level_shifted == level_aligned
    drawn, on_grid = encoded[0::2], encoded[1::2]
    assert [q for q, _ in drawn] == [q for q, _ in on_grid] and {o for _, o in on_grid} == {(0, 0)}
    assert len(drawn) >= 4 and any(o != (0, 0) for _, o in drawn)


@pytest.mark.parametrize("condition, message", [
    ("noise=5>fog=1", r"unknown condition 'noise=5>fog=1'; the protocol's \(docs/evaluation.md\) are clean, jpeg75, "
                      r"noise3, blur, camera, or STEP=VALUE steps .* \(STEP one of blur, noise, jpeg, grid; "
                      r"'fog=1' is not one\)"),
    ("noise", r"'noise' is not one"),
    ("noise=0", r"condition 'noise=0': noise must be a number from 0.1 to 50, got '0'"),
    ("noise=five", r"noise must be a number from 0.1 to 50, got 'five'"),
    ("jpeg=50.5", r"condition 'jpeg=50.5': jpeg must be a whole number from 1 to 100, got '50.5'"),
    ("jpeg=101", r"jpeg must be a whole number from 1 to 100, got '101'"),
    ("noise=2>blur=1", r"condition 'noise=2>blur=1': blur acts on the HR, before the down-scale, so it comes first"),
    ("grid=8>jpeg=50", r"condition 'grid=8>jpeg=50': grid must be a whole number from 0 to 7, got '8'"),
    ("grid=3", r"condition 'grid=3': grid=K moves the blocks of the jpeg step right after it"),
    ("grid=3>noise=2>jpeg=50", r"grid=K moves the blocks of the jpeg step right after it"),
])
def test_a_bad_chain_is_refused_showing_the_bad_step(condition, message):
    with pytest.raises(DataError, match=message):
        condition_steps(condition)


def test_the_default_ranges_cover_protocol_md_range():
    config = DegradationConfig()
    assert config.blur_sigma[1] >= 1.2 and config.noise_sigma[1] >= 5.0
    assert config.jpeg_quality[0] <= 50 and config.jpeg_quality[1] >= 95


@pytest.mark.parametrize("kwargs, message", [
    ({"clean_share": 1.5}, r"clean_share must be between 0 and 1, got 1.5"),
    ({"blur_sigma": (1.5, 0.5)}, r"blur_sigma must satisfy 0 <= low <= high <= 5, got \(1.5, 0.5\)"),
    ({"noise_sigma": (-1, 2)}, r"noise_sigma must satisfy 0 <= low <= high <= 50, got \(-1, 2\)"),
    ({"jpeg_quality": (40, 101)}, r"jpeg_quality must satisfy 1 <= low <= high <= 100, got \(40, 101\)"),
    ({"jpeg_quality": (40.5, 90)}, r"jpeg_quality must be whole qualities"),
    ({"noise_sigma": 3}, r"noise_sigma must be a \(low, high\) pair, got 3"),
    ({"downscale_kernels": ("bicubic", "sinc")}, r"downscale_kernels must be some of .*got \['bicubic', 'sinc'\]"),
    ({"jpeg_grid_shift": "yes"}, r"jpeg_grid_shift must be true or false, got 'yes'"),
])
def test_bad_ranges_are_refused_showing_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DegradationConfig(**kwargs)


def test_configs_round_trip_and_unknown_keys_are_named():
    config = DegradationConfig(jpeg_quality=(30, 90), downscale_kernels=("area",))
    assert DegradationConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"unknown DegradationConfig keys \['fog'\]"):
        DegradationConfig.from_dict({"fog": 1})


@pytest.mark.parametrize("args, message", [
    (["--degrade", "--blur-sigma", "2,1"], "blur_sigma must satisfy 0 <= low <= high <= 5, got (2, 1)"),
    (["--degrade", "--jpeg-quality", "fifty,90"], "expected LOW,HIGH (two int numbers), got 'fifty,90'"),
    (["--noise-sigma", "1,2"], "--noise-sigma sets a range of --degrade: add --degrade"),
])
def test_a_bad_range_on_the_command_line_is_one_line(face_folder, tmp_path, args, message):
    result = CliRunner().invoke(main, ["train", "--data", str(face_folder), "--out", str(tmp_path / "run"), *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_a_pair_without_noise_or_jpeg_is_the_clean_half_however_blur_and_kernels_are_drawn(hr):
    config = DegradationConfig(clean_share=0.0, blur_probability=1.0, downscale_kernels=("area",),
                               noise_probability=0.0, jpeg_probability=0.0)
    lr, level = degrade(hr, config, np.random.default_rng(0))
    np.testing.assert_array_equal(np.asarray(lr), np.asarray(make_lr(hr)))
    assert level == 0.0
