"""numpy pre/post-processing: pixel scaling, YCbCr, strip-wise resizing and transparent fill."""

import numpy as np
import pytest
from PIL import Image

from enhance_edge.errors import ImageError
from enhance_edge.core.processing import (fill_transparent, from_unit_float,
                                          resize_plane_rows, rgb_to_luma_chroma, to_unit_float, ycbcr_to_rgb_pixels)


@pytest.mark.parametrize("dtype, top", [(np.uint8, 255), (np.uint16, 65535)])
def test_unit_float_round_trip_is_exact(dtype, top):
    pixels = np.array([[0, 1, top // 2, top]], dtype=dtype)
    assert np.array_equal(from_unit_float(to_unit_float(pixels), dtype), pixels)
    assert to_unit_float(pixels).max() == 1.0


def test_from_unit_float_rounds_and_clips():
    assert from_unit_float(np.array([-0.5, 0.6 / 255, 1.4 / 255, 1.7])).tolist() == [0, 1, 1, 255]


def test_unsupported_pixel_types_are_named():
    with pytest.raises(ImageError, match="float64"):
        to_unit_float(np.zeros(3))


def test_ycbcr_round_trip_and_pillow_agreement():
    rgb = np.random.default_rng(0).integers(0, 256, (8, 9, 3), dtype=np.uint8)
    luma, chroma = np.empty((8, 9), np.float32), np.empty((2, 8, 9), np.float32)
    rgb_to_luma_chroma(rgb, luma, chroma)
    back = np.full((8, 9, 4), 7, np.uint8)
    ycbcr_to_rgb_pixels(luma, chroma[0], chroma[1], back)
    np.testing.assert_array_equal(back[..., :3], rgb)
    assert (back[..., 3] == 7).all()  # a fourth (alpha) channel is left as it was
    # out-of-gamut values clip to the pixel range, as from_unit_float clips; others round to the nearest
    zero = np.zeros((1, 4), np.float32)
    ycbcr_to_rgb_pixels(np.array([[1.2, -0.1, 100.6 / 255, 100.4 / 255]], np.float32), zero, zero, back[:1, :4])
    assert back[0, :4, :3].tolist() == [[255] * 3, [0] * 3, [101] * 3, [100] * 3]
    pillow = np.asarray(Image.fromarray(rgb).convert("YCbCr")).astype(np.float32)
    ours = np.dstack([luma, chroma[0] + 0.5, chroma[1] + 0.5]) * 255  # Pillow and JPEG offset chroma by half
    assert np.abs(ours - pillow).max() <= 1.0  # Pillow's is the same BT.601, in integers


def test_resize_plane_rows_equals_slices_of_the_whole_resize():
    plane = np.random.default_rng(0).random((23, 31), dtype=np.float32)
    size = (62, 46)
    image = Image.fromarray(plane)
    whole = np.asarray(image.resize(size, Image.Resampling.BICUBIC))
    strips = [resize_plane_rows(image, size, top, min(top + 7, 46)) for top in range(0, 46, 7)]
    np.testing.assert_allclose(np.concatenate(strips), whole, atol=1e-6)


def test_fill_transparent_takes_the_colour_of_the_visible_neighbours():
    colour = np.zeros((16, 16, 3), np.uint8)
    colour[:, :8] = (200, 100, 50)  # left half visible and orange, right half transparent black
    alpha = np.zeros((16, 16), np.uint8)
    alpha[:, :8] = 255
    filled = fill_transparent(colour, alpha)
    assert np.array_equal(filled[:, :8], colour[:, :8])  # visible pixels untouched
    assert np.array_equal(filled[:, 8:], np.broadcast_to((200, 100, 50), (16, 8, 3)))
    assert colour[:, 8:].max() == 0  # the input is not modified


def test_fill_transparent_blends_between_differently_coloured_regions():
    colour = np.zeros((1, 9, 1), np.uint8)
    colour[0, 0], colour[0, 8] = 0, 240
    alpha = np.zeros((1, 9), np.uint8)
    alpha[0, [0, 8]] = 255
    filled = fill_transparent(colour, alpha)[0, :, 0]
    assert filled[0] == 0 and filled[8] == 240
    assert 0 <= filled[1:8].min() and filled[1:8].max() <= 240  # no new extremes


@pytest.mark.parametrize("alpha_value", [0, 255])
def test_fill_transparent_leaves_uniform_alpha_alone(alpha_value):
    colour = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(fill_transparent(colour, np.full((5, 7), alpha_value, np.uint8)), colour)


def test_fill_transparent_reaches_far_holes_in_odd_sizes():
    colour = np.zeros((37, 53, 1), np.uint8)
    alpha = np.zeros((37, 53), np.uint8)
    colour[36, 52], alpha[36, 52] = 90, 7  # a single, barely visible pixel in the far corner
    filled = fill_transparent(colour, alpha)
    assert (filled == 90).all()


